import os

import pytest
import torch
from typer.testing import CliRunner

from fan_edge.cli import app
from fan_edge.config import preset


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # `make test` runs two pytest-xdist workers on the project's 2 cores: one thread each,
    # so that they do not fight over the cores; a plain `pytest` uses both
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture
def tiny_cfg():
    """The tiny preset at 32 px with few classes: fast enough for every test."""
    return preset("tiny", num_classes=5)


@pytest.fixture
def cli():
    """Run `fan-edge ARGS` through Typer's CliRunner; returns (exit code, stdout, stderr).
    A crash (an exception that is not a one-line user error) fails the test."""
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [str(a) for a in args], prog_name="fan-edge")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny FAN checkpoint with randomised (not freshly initialised) private layers.

    Norm statistics and alterations differ per sub-network, as after training, so a graph
    that used the wrong sub-network's tensors would be caught. No training needed.
    """
    from fan_edge.data.synthetic import CLASSES
    from fan_edge.train.checkpoint import save_untrained

    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    # The validation data is recorded as `fan-edge train` does, so `fan-edge eval` works.
    val = {"train": "synthetic", "val": "synthetic", "val_seed": 1000, "num_val": 8}
    return save_untrained(path, preset("tiny", num_classes=len(CLASSES)), list(CLASSES), data=val)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported at 4/8/16 frames (shared weights)."""
    from exporters import export

    return export(tiny_checkpoint, [4, 8, 16], tmp_path_factory.mktemp("tb") / "bundle")


@pytest.fixture(scope="session")
def example_video(tmp_path_factory):
    """A 30-frame synthetic clip written as a real .mp4."""
    from fan_edge.data.synthetic import SyntheticActions
    from fan_edge.data.video import write_video

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, SyntheticActions(1, seed=7).render(0))
    return path


NO_TORCH = """
import sys

class NoTorch:  # records and refuses every attempt to import torch, even a caught one
    attempts = []
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            self.attempts.append(name)
            raise ImportError("torch is not allowed in the runtime")
        return None

sys.meta_path.insert(0, NoTorch())
"""


def run_without_torch(code: str) -> str:
    """Run `code` in a fresh Python that refuses every import of torch (even a caught one);
    fail unless it succeeds and imported none. Returns its stdout."""
    import subprocess
    import sys

    check = '\nassert not NoTorch.attempts, NoTorch.attempts\nassert "torch" not in sys.modules\n'
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH + code + check], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
