import pytest
import torch

from fan_edge.cli import main
from fan_edge.config import preset


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_cfg():
    """The tiny preset at 32 px with few classes: fast enough for every test."""
    return preset("tiny", num_classes=5)


@pytest.fixture
def cli(capsys):
    """Run the real console entry point; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
