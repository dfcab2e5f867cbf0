"""Top-1 accuracy of a bundle's graphs on labelled clips, torch-free.

`fan-edge build` records it for reduced-precision artifacts (int8 against the fp32 graph of
the same sub-network, on the same clips), and `fan-edge run --max-loss` reads it to keep a
sub-network that loses too much in fp32. Clips are sampled and preprocessed exactly as the
trainer validates and `fan-edge run` reads: TSN segment centres at the sub-network's own
frame count, shorter side resized, centre crop, the bundle's normalization.

The labelled data is the bundle's own validation set (recorded at export from the training
run) or any `--val` source `fan-edge train --val` takes: `synthetic`, a .csv of videos, a
frame-folder list.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fan_edge.bundle import Bundle, Subnetwork, sha256_file
from fan_edge.errors import FanEdgeError

# A sub-network losing more than this many top-1 points is reported (`fan-edge build`,
# `show`) and kept fp32 by `fan-edge run --precision auto` unless `--max-loss` says otherwise.
DEFAULT_MAX_LOSS = 1.0
DEFAULT_SYNTHETIC_CLIPS = 500
BUILTIN = ("synthetic", "synthetic-poses", "synthetic-pairs")  # data/sources.py open_source


@dataclass(frozen=True)
class Validation:
    data: str
    seed: int
    clips: int | None  # at most this many (None: all of a list)

    def describe(self) -> str:
        return self.data if not self.data.startswith("synthetic") else f"{self.data}:{self.seed}"


def validation_for(bundle: Bundle, val: str | None, clips: int | None) -> Validation | None:
    """`val` (or the bundle's recorded validation data when it can be found here), or None."""
    check_val(val, clips)
    recorded = bundle.manifest.get("validation")
    if val is None:
        if recorded is None:
            return None
        data = recorded["data"]
        if data.startswith("synthetic"):  # built-in: defined by its name, seed and count
            return Validation(data, recorded["seed"], clips or recorded["clips"])
        if not Path(data).is_file():
            return None  # a list from the training machine that is not here
        if recorded.get("sha256") and sha256_file(data) != recorded["sha256"]:
            raise FanEdgeError(
                f"{data} is not the validation list the model was trained with (its sha256 "
                "differs from the manifest's): pass --val to measure on it anyway"
            )
        return Validation(data, recorded["seed"], clips)  # a list: every clip, unless asked
    from fan_edge.config import VAL_SEED_OFFSET  # built-in data: never the training clips

    seed = recorded["seed"] if recorded and recorded["data"] == val else VAL_SEED_OFFSET
    if val.startswith("synthetic"):
        return Validation(val, seed, clips or DEFAULT_SYNTHETIC_CLIPS)
    return Validation(val, seed, clips)


def labelled_clips(
    bundle: Bundle, sub: Subnetwork, val: Validation
) -> tuple[list[np.ndarray], np.ndarray]:
    """The validation clips read for `sub`: ([(1, T, 3, S, S) float32], labels)."""
    from fan_edge.data.sampling import segment_indices
    from fan_edge.data.sources import open_source

    spec = bundle.input
    size = spec["size"]
    source = open_source(
        val.data,
        size=size,
        seed=val.seed,
        num_videos=val.clips or DEFAULT_SYNTHETIC_CLIPS,
        classes=bundle.classes,
    )
    if list(source.classes) != list(bundle.classes):
        raise FanEdgeError(
            f"validation set {val.data} has other classes than the bundle "
            f"({len(source.classes)} vs {len(bundle.classes)}): give labelled clips of its classes"
        )
    n = len(source) if val.clips is None else min(val.clips, len(source))
    if n < 1:
        raise FanEdgeError(f"validation set {val.data} holds no clips: give a labelled set")
    clips, labels = [], []
    # evenly over the set: a list sorted by class must not give the first classes alone
    for i in np.unique(np.linspace(0, len(source) - 1, n).round().astype(int)):
        i = int(i)
        idx = segment_indices(source.num_frames(i), sub.frames)
        if getattr(source, "resizes_on_read", False):
            frames = source.read(i, idx, bundle.read_size)
        else:
            frames = source.read(i, idx)
        clips.append(bundle.transform(frames)[None])
        labels.append(source.label(i))
    return clips, np.asarray(labels)


def top1(graph: str | Path, clips: list[np.ndarray], labels: np.ndarray) -> float:
    """Top-1 (%) of one ONNX graph (ONNX Runtime, CPU) on preprocessed clips."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    pred = np.array([sess.run(None, {name: x})[0].argmax(1)[0] for x in clips])
    return float(100.0 * (pred == labels).mean())


def accuracy_record(
    bundle: Bundle, sub: Subnetwork, graph: str | Path, val: Validation, clips_labels=None
) -> dict:
    """What a build records: top-1 of `graph` and of the sub-network's fp32 graph, and the
    loss in points (positive: the artifact is worse)."""
    clips, labels = clips_labels or labelled_clips(bundle, sub, val)
    reference = top1(bundle.file(sub.file), clips, labels)
    mine = top1(graph, clips, labels)
    return {
        "data": val.describe(),
        "clips": len(labels),
        "fp32_top1": reference,
        "top1": mine,
        "loss_points": reference - mine,
    }


def loss_of(record: dict) -> float | None:
    """The recorded top-1 loss of a build artifact, None when it was not measured."""
    acc = record.get("accuracy")
    return None if acc is None else float(acc["loss_points"])


def check_val(val: str | None, val_clips: int | None) -> None:
    """Bad `--val` options, refused before a build starts."""
    if val_clips is not None and val_clips < 1:
        raise FanEdgeError(f"--val-clips must be at least 1, got {val_clips}")
    if val is not None and val.startswith("synthetic") and val not in BUILTIN:
        raise FanEdgeError(f"unknown built-in data {val!r}: choose one of {', '.join(BUILTIN)}")
    if val is not None and not val.startswith("synthetic") and not Path(val).is_file():
        raise FanEdgeError(
            f"no validation set at {val}: give 'synthetic', a .csv of videos or a frame list"
        )


def record_accuracy(
    bundle: Bundle, folder: Path, records: list[dict], val: str | None, val_clips: int | None
) -> Validation | None:
    """Add each build record's accuracy against fp32 (`records[i]["file"]` in `folder`), on
    `val` or the bundle's own validation data; nothing when there is neither."""
    validation = validation_for(bundle, val, val_clips)
    if validation is None:
        return None
    by_frames = {s.frames: s for s in bundle.subnetworks}
    for r in records:
        r["accuracy"] = accuracy_record(
            bundle, by_frames[r["frames"]], folder / r["file"], validation
        )
    return validation
