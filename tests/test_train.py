"""Training modes, checkpoints (weights_only), resume, eval, and torchrun with 2 processes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from fan_edge import FanEdgeError
from fan_edge.config import KD_AFTER
from fan_edge.data.synthetic import CLASSES
from fan_edge.train.api import evaluate_checkpoint, train_from_options
from fan_edge.train.checkpoint import load_checkpoint, load_model
from fan_edge.train.losses import mutual_distillation

SMALL = dict(
    data="synthetic",
    val=None,
    preset="tiny",
    epochs=1,
    batch_size=4,
    lr=0.05,
    kd_lambda=1.0,
    seed=0,
    num_videos=8,
    num_val=4,
    quiet=True,
)


def test_mutual_distillation_matches_its_definition():
    torch.manual_seed(0)
    zl, zm, zh = (torch.randn(3, 5, requires_grad=True) for _ in range(3))
    y = torch.tensor([0, 2, 4])
    loss = mutual_distillation([zl, zm, zh], y, lam=0.5)
    ph = zh.softmax(1)
    kl = sum((ph * (ph.log() - z.log_softmax(1))).sum(1).mean() for z in (zl, zm))
    expected = torch.nn.functional.cross_entropy(zh, y) + 0.5 * kl
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()  # the teacher gets gradient from CE only
    zh2 = zh.detach().requires_grad_()
    torch.nn.functional.cross_entropy(zh2, y).backward()
    assert torch.allclose(zh.grad, zh2.grad, atol=1e-6)


@pytest.mark.parametrize("mode,frames", [("fan", [4, 8]), ("standard", [8])])
def test_train_writes_a_safe_checkpoint_and_metrics(tmp_path, mode, frames):
    result = train_from_options(out=tmp_path, mode=mode, frames=frames, **SMALL)
    assert torch.isfinite(torch.tensor(result["epochs"][0]["train_loss"]))
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # no pickled code
    assert raw["model_config"]["frames"] == tuple(frames)
    assert len(raw["classes"]) == len(CLASSES)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["epochs"][0]["val"]) == {str(n) for n in frames}
    model, _ = load_model(tmp_path / "checkpoint.pt")
    assert model.frames == tuple(frames)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave nothing behind


def test_resume_continues_from_the_last_epoch(tmp_path):
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    args = {**SMALL, "epochs": 2}
    result = train_from_options(out=tmp_path, mode="fan", frames=[4, 8], resume=True, **args)
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2


def test_resume_with_other_options_is_refused(tmp_path):
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    with pytest.raises(FanEdgeError, match="another model config"):
        train_from_options(out=tmp_path, mode="fan", frames=[4, 16], resume=True, **SMALL)


def test_a_resumed_run_keeps_the_kd_after_it_was_written_with(tmp_path):
    """A checkpoint that stored `kd_after: None` trained while the default was 0.5: the same
    command resumes it with 0.5, not today's default; another value is refused by name."""
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["train_config"]["kd_after"] == KD_AFTER  # stored resolved from now on
    ckpt["train_config"]["kd_after"] = None
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    args = {**SMALL, "epochs": 2}
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], resume=True, **args)
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["train_config"]
    assert resumed["kd_after"] == 0.5
    with pytest.raises(FanEdgeError, match=r"other kd_after \(0.5 there, 0.7 now\)"):
        train_from_options(
            out=tmp_path, mode="fan", frames=[4, 8], resume=True, kd_after=0.7, **args
        )


def test_standard_mode_needs_one_frame_count(tmp_path):
    with pytest.raises(FanEdgeError, match="trains on 1 frame count.*--frames 16"):
        train_from_options(out=tmp_path, mode="standard", frames=[4, 8], **SMALL)


def test_eval_uses_the_nearest_subnetwork(tmp_path):
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    report = evaluate_checkpoint(tmp_path / "checkpoint.pt", [2, 6, 20])
    assert {n: r["subnet_frames"] for n, r in report["results"].items()} == {2: 4, 6: 8, 20: 8}
    assert all(0 <= r["top1"] <= r["top5"] <= 100 for r in report["results"].values())


def test_cli_train_and_eval(tmp_path, cli):
    code, _, err = cli(
        "train",
        "--out",
        tmp_path,
        "--frames",
        "4",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--num-videos",
        "8",
        "--num-val",
        "4",
    )
    assert code == 0, err
    code, out, _ = cli(
        "eval", tmp_path / "checkpoint.pt", "--frames", "3", "8", "--json", tmp_path / "e.json"
    )
    assert code == 0 and "top-1" in out
    assert set(json.loads((tmp_path / "e.json").read_text())["results"]) == {"3", "8"}


def test_cli_user_errors_are_one_line(tmp_path, cli):
    code, out, err = cli("eval", tmp_path / "missing.pt")
    assert code == 1 and err.strip().count("\n") == 0 and "no such checkpoint" in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, _, err = cli("eval", junk)
    assert code == 1 and "cannot load checkpoint" in err and "Traceback" not in err


def test_flops_command(cli):
    code, out, _ = cli("flops", "--preset", "tiny", "--frames", "4", "16", "--classes", "5")
    assert code == 0
    rows = {
        line.split()[1]: line.split()[3]
        for line in out.splitlines()
        if line.startswith("│") and line.split()[1].isdigit()
    }
    assert set(rows) == {"4", "16"}
    assert float(rows["16"]) == pytest.approx(4 * float(rows["4"]), rel=0.01)


def test_torchrun_two_cpu_processes(tmp_path):
    """DistributedDataParallel on gloo: 2 processes train a few steps and save one checkpoint."""
    import socket

    with socket.socket() as s:  # a free port, so parallel runs do not collide
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        port,
        "-m",
        "fan_edge.cli",
        "train",
        "--out",
        str(tmp_path),
        "--frames",
        "4",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--num-videos",
        "8",
        "--num-val",
        "4",
        "--max-steps",
        "2",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 1


def test_a_run_written_before_run_configs_resumes(tmp_path):
    """Resume compares configs, not stored dicts: a version-1 checkpoint (ResNet arguments as
    model config fields, the data spec under train_config.extra, fewer train config fields)
    continues with the same options."""
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    cfg = ckpt["model_config"]
    ckpt["model_config"] = {k: v for k, v in cfg.items() if k != "backbone"} | cfg["backbone"]
    ckpt["train_config"]["extra"] = {"data": ckpt.pop("data")}
    del ckpt["train_config"]["kd_gate"]  # a field added since: takes its default
    ckpt["version"] = 1
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    result = train_from_options(
        out=tmp_path, mode="fan", frames=[4, 8], resume=True, **{**SMALL, "epochs": 2}
    )
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    with pytest.raises(FanEdgeError, match="other lr"):
        train_from_options(
            out=tmp_path,
            mode="fan",
            frames=[4, 8],
            resume=True,
            **{**SMALL, "epochs": 3, "lr": 0.5},
        )
