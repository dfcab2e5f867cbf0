"""Nothing a user made is lost: overwrites, run locks, leftovers, exact resume (issue 13)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fan_edge import FanEdgeError
from fan_edge.fileio import atomic_dir, locked, sweep_stale
from fan_edge.train.api import train_from_options
from fan_edge.train.checkpoint import load_checkpoint

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


def tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def hidden(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("."))


# ---- overwrite replaces only what fan-edge made ----------------------------------------


def test_export_overwrite_never_deletes_the_folder_holding_its_input(
    cli, tmp_path, tiny_checkpoint
):
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(tiny_checkpoint, mine / "checkpoint.pt")
    before = tree(mine)
    code, _, err = cli(
        "export", mine / "checkpoint.pt", "--frames", "4", "--out", mine, "--overwrite"
    )
    assert code == 1 and err.count("\n") == 1
    assert "not a bundle" in err or "input" in err
    assert tree(mine) == before and hidden(tmp_path) == []


@pytest.mark.parametrize("content", ["user-files", "bundle-plus-user-file", "a-file"])
def test_export_overwrite_refuses_what_it_did_not_make(
    cli, tmp_path, tiny_checkpoint, tiny_bundle, content
):
    out = tmp_path / "out"
    if content == "user-files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif content == "bundle-plus-user-file":
        shutil.copytree(tiny_bundle, out)
        (out / "notes.txt").write_text("mine")
    else:
        out.write_text("mine")
    before = tree(out) if out.is_dir() else out.read_bytes()
    code, _, err = cli("export", tiny_checkpoint, "--frames", "4", "--out", out, "--overwrite")
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1
    assert (tree(out) if out.is_dir() else out.read_bytes()) == before
    assert hidden(tmp_path) == []


def test_export_overwrite_replaces_a_bundle(cli, tmp_path, tiny_checkpoint, tiny_bundle):
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    (out / "latency.json").write_text("{}")  # measured on the device: the bundle's own file
    code, _, err = cli("export", tiny_checkpoint, "--frames", "4", "--out", out, "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.onnx")) == ["fan_4f.onnx"]
    assert not (out / "latency.json").exists() and hidden(tmp_path) == []


def test_export_without_overwrite_refuses_before_loading_anything(cli, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    code, _, err = cli("export", tmp_path / "missing.pt", "--out", tmp_path / "out")
    assert code == 1 and "already exists and is not a bundle" in err  # checked first


def test_a_failed_export_leaves_no_empty_folders(cli, tmp_path):
    """The folders above `--out` are made for the bundle, not before: a failure removes them."""
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = cli("export", bad, "--out", tmp_path / "new" / "deep" / "bundle")
    assert code == 1 and "cannot load checkpoint" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]

    def fails(_):
        raise FanEdgeError("the work failed")

    with (
        pytest.raises(FanEdgeError, match="the work failed"),
        atomic_dir(tmp_path / "made" / "out") as tmp,
    ):
        fails(tmp)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


def test_export_into_an_empty_folder_or_the_current_one(
    cli, tmp_path, tiny_checkpoint, tiny_bundle, monkeypatch
):
    (tmp_path / "empty").mkdir()
    assert cli("export", tiny_checkpoint, "--frames", "4", "--out", tmp_path / "empty")[0] == 0
    shutil.copytree(tiny_bundle, tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b")
    code, _, err = cli("export", tiny_checkpoint, "--frames", "4", "--out", ".", "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "b").glob("*.onnx")) == ["fan_4f.onnx"]
    assert hidden(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "{ck}", "--frames", "4", "--json", "{ck}"],
        ["run", "{video}", "--output", "{video}"],
    ],
    ids=["eval-json-over-checkpoint", "run-output-over-video"],
)
def test_an_output_is_never_one_of_the_inputs(
    cli, tmp_path, tiny_checkpoint, tiny_bundle, example_video, argv
):
    ck, video = tmp_path / "ck.pt", tmp_path / "clip.json"
    shutil.copy(tiny_checkpoint, ck)
    shutil.copy(example_video, video)
    before = tree(tmp_path)
    args = [a.format(ck=ck, video=video) for a in argv]
    code, _, err = cli(*args, *(["--bundle", tiny_bundle] if argv[0] == "run" else []))
    assert code == 1 and "input" in err and err.count("\n") == 1, err
    assert tree(tmp_path) == before


def test_synth_overwrite_replaces_only_a_synth_folder(cli, tmp_path):
    data = tmp_path / "data"
    assert cli("synth", data, "--num-videos", "2")[0] == 0
    assert cli("synth", data, "--num-videos", "3", "--overwrite")[0] == 0
    assert len(list((data / "videos").glob("*.mp4"))) == 3
    user = tmp_path / "user"
    user.mkdir()
    (user / "annotations.csv").write_text("path,label\n")
    code, _, err = cli("synth", user, "--num-videos", "2", "--overwrite")
    assert code == 1 and "not a synthetic dataset" in err
    assert tree(user) == {"annotations.csv": b"path,label\n"}


def test_atomic_dir_checks_again_after_the_work(tmp_path):
    """A user file that appears in the target while the work runs is not deleted."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "made.txt").write_text("old")

    def owned(p):
        return {"made.txt"}

    with (
        pytest.raises(FanEdgeError, match="did not write"),
        atomic_dir(out, overwrite=True, owned=owned, kind="thing") as tmp,
    ):
        (tmp / "made.txt").write_text("new")
        (out / "late.txt").write_text("user")
    assert tree(out) == {"late.txt": b"user", "made.txt": b"old"} and hidden(tmp_path) == []


# An interrupt (Ctrl-C, or SIGTERM, which the CLI turns into one) can land between any two
# bytecodes. These put it at the worst places: right after a temporary is made, and between
# the two renames that replace an existing folder.


def _interrupt_after(monkeypatch, module, name):
    real = getattr(module, name)

    def then_interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, then_interrupted)


def test_an_interrupt_as_a_temporary_is_made_leaves_nothing(tmp_path, monkeypatch):
    from fan_edge.fileio import atomic_path

    _interrupt_after(monkeypatch, os, "mkdir")
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "out"):
        pass
    monkeypatch.undo()
    _interrupt_after(monkeypatch, os, "open")
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "a.json"):
        pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_between_the_renames_keeps_the_old_folder(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "made.txt").write_text("old")
    renames = []
    real = Path.rename

    def rename(self, target):
        done = real(self, target)
        renames.append(self)
        if len(renames) == 1:  # the old folder is aside, the new one not yet in place
            raise KeyboardInterrupt
        return done

    monkeypatch.setattr(Path, "rename", rename)
    with (
        pytest.raises(KeyboardInterrupt),
        atomic_dir(out, overwrite=True, owned=lambda p: {"made.txt"}, kind="thing") as tmp,
    ):
        (tmp / "made.txt").write_text("new")
    assert renames[0] == out  # the interrupt came where it was meant to
    assert tree(out) == {"made.txt": b"old"} and hidden(tmp_path) == []


# ---- runs: locked, never replaced silently ---------------------------------------------


def test_an_existing_run_needs_resume_or_overwrite(tmp_path):
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    first = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(FanEdgeError, match="already holds a run.*--resume.*--overwrite"):
        train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    assert (tmp_path / "checkpoint.pt").read_bytes() == first
    with pytest.raises(FanEdgeError, match="choose one"):
        train_from_options(
            out=tmp_path, mode="fan", frames=[4, 8], resume=True, overwrite=True, **SMALL
        )
    (tmp_path / "notes.txt").write_text("mine")
    result = train_from_options(
        out=tmp_path, mode="fan", frames=[4, 8], overwrite=True, **SMALL | {"seed": 1}
    )
    assert [e["epoch"] for e in result["epochs"]] == [1]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["train_config"]["seed"] == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the run's own files go


def test_resume_of_nothing_is_refused(tmp_path):
    with pytest.raises(FanEdgeError, match="nothing to resume"):
        train_from_options(
            out=tmp_path / "new" / "run", mode="fan", frames=[4, 8], resume=True, **SMALL
        )
    assert list(tmp_path.iterdir()) == []  # the folders it made for nothing are gone
    with pytest.raises(FanEdgeError, match="nothing to resume"):
        train_from_options(out=tmp_path / "st", mode="st", frames=[4, 8], resume=True, **SMALL)


def test_resume_with_other_data_is_refused(tmp_path):
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    with pytest.raises(FanEdgeError, match=r"other data \(num_videos\)"):
        train_from_options(
            out=tmp_path, mode="fan", frames=[4, 8], resume=True, **SMALL | {"num_videos": 12}
        )


def test_overwrite_never_deletes_the_init_checkpoint(tmp_path):
    train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    first = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(FanEdgeError, match="--init .* is the run --overwrite would replace"):
        train_from_options(
            out=tmp_path,
            mode="fan",
            frames=[4, 8],
            overwrite=True,
            init=tmp_path / "checkpoint.pt",
            **SMALL,
        )
    assert (tmp_path / "checkpoint.pt").read_bytes() == first


@pytest.mark.parametrize("name", ["checkpoint.pt", "metrics.json"])
def test_a_folder_in_place_of_a_run_file_is_refused_before_training(tmp_path, name):
    (tmp_path / name).mkdir()
    with pytest.raises(FanEdgeError, match="it is a folder"):
        train_from_options(out=tmp_path, mode="fan", frames=[4, 8], overwrite=True, **SMALL)


def test_resume_knows_a_list_file_by_its_content(tmp_path, monkeypatch):
    from fan_edge.data.export import write_synthetic

    csv = write_synthetic(tmp_path / "data", num_videos=4)
    args = SMALL | {"data": str(csv), "val": None}
    train_from_options(out=tmp_path / "run", mode="fan", frames=[4, 8], **args)
    monkeypatch.chdir(tmp_path / "data")
    result = train_from_options(
        out=tmp_path / "run",
        mode="fan",
        frames=[4, 8],
        resume=True,
        **args | {"data": "./annotations.csv", "epochs": 2},
    )
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    csv.write_text(csv.read_text().replace("\n", "\n", 1) + "videos/000000.mp4,0\n")
    with pytest.raises(FanEdgeError, match="other data"):
        train_from_options(
            out=tmp_path / "run", mode="fan", frames=[4, 8], resume=True, **args | {"epochs": 3}
        )


def test_a_run_in_use_is_refused(tmp_path):
    with locked(tmp_path, "training"), pytest.raises(FanEdgeError, match="in use"):
        train_from_options(out=tmp_path, mode="fan", frames=[4, 8], **SMALL)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_train_into_a_file_fails_before_training(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(
        "train", "--out", tmp_path / "file" / "run", "--num-videos", "8", "--epochs", "1"
    )
    assert code == 1 and ("is a file" in err or "a part of the path" in err)


# ---- leftovers ---------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_dead_processes_are_swept(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / f".bundle.fan-edge-tmp-{dead}-x1.tmp").mkdir()
    (tmp_path / f".bundle.fan-edge-tmp-{dead}-x2.old").mkdir()
    (tmp_path / f".metrics.fan-edge-tmp-{dead}-abc.tmp.json").write_text("{")
    live = f".bundle.fan-edge-tmp-{alive}-x3.tmp"
    (tmp_path / live).mkdir()  # still being written
    users = [
        ".config",
        ".notes.2024-jan.old",
        ".photos.2023-summer.old",
        f".a.{dead}-x.tmp",
        f".b.fan-edge-tmp-{dead}-x.tmp.keep.me",
    ]  # not ours
    for name in users:
        (tmp_path / name).mkdir()
    sweep_stale(tmp_path)
    assert hidden(tmp_path) == sorted([live, *users])


def test_a_terminated_export_leaves_nothing(tmp_path, tiny_checkpoint):
    """SIGTERM mid-export: no bundle, no temporary folder, a non-zero exit."""
    out = tmp_path / "bundle"
    cmd = [
        sys.executable,
        "-c",
        "from fan_edge.cli import main; main()",
        "export",
        str(tiny_checkpoint),
        "--frames",
        "4",
        "8",
        "16",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.time() < deadline, "the export never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode(errors="replace")
    assert code == 130 and "interrupted (SIGTERM)" in err, (code, err[-2000:])
    assert list(tmp_path.iterdir()) == [], err[-2000:]


def test_a_terminated_run_saves_its_last_step_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--num-videos", "48", "--num-val", "8", "--epochs", "3", "--batch-size", "4"]
    cmd = [
        sys.executable,
        "-c",
        "from fan_edge.cli import main; main()",
        "train",
        "--out",
        str(out),
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.json").exists():  # epoch 1 is done: epoch 2 is running
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert "SIGTERM: stopping after this step" in err  # the message, as the signal came
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("error: SIGTERM: stopped at step"), err
    assert "continue with --resume" in err
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["epoch"] >= 1 and hidden(out) == []
    result = train_from_options(
        out=out,
        mode="fan",
        frames=None,
        data="synthetic",
        val=None,
        preset="tiny",
        epochs=3,
        batch_size=4,
        lr=0.1,
        kd_lambda=1.0,
        seed=0,
        num_videos=48,
        num_val=8,
        resume=True,
        quiet=True,
    )
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3]


# ---- exact resume ------------------------------------------------------------------------

EXACT = SMALL | {"epochs": 2, "num_videos": 12, "val": "synthetic"}  # 3 steps an epoch


def _trained(out: Path, stops: list[int]) -> tuple[list, dict]:
    """Train in pieces of `stops` steps (the last piece runs to the end), resuming each."""
    for i, steps in enumerate([*stops, None]):
        train_from_options(
            out=out, mode="fan", frames=[4, 8], resume=i > 0, max_steps=steps, **EXACT
        )
    ckpt = load_checkpoint(out / "checkpoint.pt")
    return ckpt["metrics"], ckpt["state_dict"]


@pytest.mark.parametrize("stops", [[2], [3], [1, 3]], ids=["mid-epoch", "epoch-end", "twice"])
def test_an_interrupted_run_resumes_exactly(tmp_path, stops):
    """Loss by loss and weight by weight the same as the run that was never stopped."""
    whole, weights = _trained(tmp_path / "whole", [])
    pieces, resumed = _trained(tmp_path / "pieces", stops)
    assert [e["train_loss"] for e in pieces] == [e["train_loss"] for e in whole]
    assert [e["val"] for e in pieces] == [e["val"] for e in whole]
    assert [e["frames_seen"] for e in pieces] == [e["frames_seen"] for e in whole]
    assert all(torch.equal(weights[k], resumed[k]) for k in weights)
