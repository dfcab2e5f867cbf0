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


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny FAN checkpoint with randomised (not freshly initialised) private layers.

    Norm statistics and alterations differ per sub-network, as after training, so a graph
    that used the wrong sub-network's tensors would be caught. No training needed.
    """
    from fan_edge.config import TrainConfig
    from fan_edge.data.synthetic import CLASSES
    from fan_edge.models import build_model
    from fan_edge.train.checkpoint import save_checkpoint

    cfg = preset("tiny", num_classes=len(CLASSES))
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if "running_var" in name:
                t.uniform_(0.5, 2.0)
            elif t.dtype.is_floating_point and any(k in name for k in ("bn", "alter")):
                t.add_(0.1 * torch.randn_like(t))
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    train_cfg = TrainConfig(extra={"data": {"val": "synthetic", "val_seed": 1000, "num_val": 8}})
    save_checkpoint(
        path,
        model_config=cfg.to_dict(),
        train_config=train_cfg.to_dict(),
        classes=list(CLASSES),
        state_dict=model.state_dict(),
        epoch=1,
        metrics=[],
    )
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported at 4/8/16 frames (shared weights)."""
    from exporters import export

    return export(tiny_checkpoint, [4, 8, 16], tmp_path_factory.mktemp("tb") / "bundle",
                  log=lambda *_: None)  # fmt: skip


@pytest.fixture(scope="session")
def example_video(tmp_path_factory):
    """A 30-frame synthetic clip written as a real .mp4."""
    from fan_edge.data.synthetic import SyntheticActions
    from fan_edge.data.video import write_video

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, SyntheticActions(1, seed=7).render(0))
    return path
