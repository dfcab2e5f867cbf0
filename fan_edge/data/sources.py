"""Clip sources: what a dataset knows about its videos, torch-free.

A *source* knows its videos (`__len__`, `classes`, `label(i)`, `num_frames(i)`,
`read(i, indices)`); a source with `resizes_on_read = True` takes
`read(i, indices, short_side)` and resizes each frame as it is read, so memory is bounded by
the model's input, not the video's size. `open_source(spec)` opens one from its name. The
trainer wraps a source in `ClipDataset` (datasets.py); `fan-edge build --val` reads one
without PyTorch.

Clips shorter than 2 frames are refused, by the rule `fan-edge run` applies
(`runtime.video.source.too_short`): a clip the runtime would refuse must not be trained on.
Refused, not skipped: a silently smaller dataset is worse than an error naming the clip.
Videos are refused when the shared reader opens them; frame lists as they are parsed.
"""

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fan_edge.config import MAX_CLASSES
from fan_edge.data.synthetic import SyntheticActions, SyntheticPoses
from fan_edge.data.synthetic_pairs import SyntheticPairs
from fan_edge.data.video import count_frames, list_frame_files, read_image_frames, read_video_frames
from fan_edge.errors import FanEdgeError


def _count(text: str) -> int | None:
    """`text` as a non-negative integer if it is one (ASCII digits), else None. Numbers too
    long for `int()` to parse (4300+ digits) count as 10**18: too large for any use here."""
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= 18 else 10**18


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FanEdgeError(f"{path} is not a text {what}: {e}") from None
    except OSError as e:
        raise FanEdgeError(f"cannot read {path}: {e.strerror or e}") from None


class VideoCSV:
    """A folder of video files listed in a CSV with columns `path,label`.

    `path` is relative to the CSV's folder; `label` is a class name or an integer index.
    The class list is `classes`, else a `classes.txt` (one name a line) beside the CSV, else
    the sorted unique labels (then train and validation CSVs must hold the same labels).
    """

    def __init__(self, csv_path: str | Path, classes: Sequence[str] | None = None):
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise FanEdgeError(f"no such annotation file: {self.csv_path}")
        text = _read_text(self.csv_path, "CSV (path,label)")
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as e:
            raise FanEdgeError(f"{self.csv_path} is not a text CSV (path,label): {e}") from None
        if not rows or not {"path", "label"} <= set(rows[0]):
            raise FanEdgeError(f"{self.csv_path}: need a header 'path,label' and at least one row")
        root = self.csv_path.parent
        for line, r in enumerate(rows, 2):
            if not (r.get("path") or "").strip() or not (r.get("label") or "").strip():
                raise FanEdgeError(f"{self.csv_path}:{line}: empty path or label")
        self.paths = [root / r["path"].strip() for r in rows]
        names = [r["label"].strip() for r in rows]
        listed = root / "classes.txt"
        if classes is None and listed.is_file():
            classes = [c for c in _read_text(listed, "class list").splitlines() if c.strip()]
        indices = [_count(n) for n in names]
        if classes:
            self.classes = list(classes)
            if len(set(self.classes)) != len(self.classes):
                raise FanEdgeError(
                    f"{self.csv_path}: the class list names a class twice: list "
                    "each class once (classes.txt: one name a line)"
                )
        elif all(i is not None for i in indices):  # integer labels: indices, sorted numerically
            top = max(indices)
            if top >= MAX_CLASSES:
                line = indices.index(top) + 2
                raise FanEdgeError(
                    f"{self.csv_path}:{line}: label {top} is not a class index "
                    f"(at most {MAX_CLASSES} classes): fix the label or list "
                    "the classes in classes.txt"
                )
            self.classes = [str(i) for i in range(top + 1)]
        else:
            self.classes = sorted(set(names))
        lookup = {c: i for i, c in enumerate(self.classes)}
        self.labels = []
        for line, (n, i) in enumerate(zip(names, indices, strict=True), 2):
            index = lookup.get(n, -1 if i is None else i)
            if not 0 <= index < len(self.classes):
                raise FanEdgeError(
                    f"{self.csv_path}:{line}: label {n!r} is not one of the "
                    f"{len(self.classes)} classes"
                )
            self.labels.append(index)
        missing = [(line, p) for line, p in enumerate(self.paths, 2) if not p.is_file()]
        if missing:  # now, not when an epoch reaches the row
            line, first = missing[0]
            raise FanEdgeError(
                f"{self.csv_path}:{line}: no video {first} ({len(missing)} of "
                f"{len(rows)} listed files are missing): paths are relative to "
                "the CSV's folder"
            )
        self._counts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def label(self, i: int) -> int:
        return self.labels[i]

    def num_frames(self, i: int) -> int:
        if i not in self._counts:
            self._counts[i] = count_frames(self.paths[i])
        return self._counts[i]

    resizes_on_read = True

    def read(self, i: int, indices: np.ndarray, short_side: int | None = None) -> np.ndarray:
        return read_video_frames(self.paths[i], indices, short_side)


class FrameFolderList:
    """Something-Something / TSM style: a list file of `folder num_frames label` lines.

    Folders are relative to `root` (default: the list file's folder). The frames actually
    present are what counts; a folder with fewer images than the list claims is an error.
    """

    def __init__(self, list_path: str | Path, root: str | Path | None = None, classes=None):
        self.list_path = Path(list_path)
        if not self.list_path.is_file():
            raise FanEdgeError(f"no such list file: {self.list_path}")
        root = Path(root) if root else self.list_path.parent
        self.items: list[tuple[Path, int, int]] = []
        text = _read_text(self.list_path, "list ('folder num_frames label' lines)")
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise FanEdgeError(
                    f"{self.list_path}:{lineno}: expected 'folder num_frames label', got {line!r}"
                )
            claimed, label = _count(parts[1]), _count(parts[2])
            if claimed is None or label is None:
                raise FanEdgeError(
                    f"{self.list_path}:{lineno}: num_frames and label must be "
                    f"non-negative integers, got {line!r}"
                )
            if claimed < 2:
                from fan_edge.runtime.video.source import too_short

                raise too_short(f"{self.list_path}:{lineno}: {parts[0]}", claimed)
            if label >= MAX_CLASSES:
                raise FanEdgeError(
                    f"{self.list_path}:{lineno}: label {label} is not a class "
                    f"index (at most {MAX_CLASSES} classes)"
                )
            self.items.append((root / parts[0], claimed, label))
        if not self.items:
            raise FanEdgeError(f"{self.list_path} lists no videos")
        n_cls = max(lab for _, _, lab in self.items) + 1
        self.classes = list(classes) if classes else [str(i) for i in range(n_cls)]
        self._files: dict[int, list[Path]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def label(self, i: int) -> int:
        return self.items[i][2]

    def _frames(self, i: int) -> list[Path]:
        if i not in self._files:
            folder, claimed, _ = self.items[i]
            files = list_frame_files(folder)
            if len(files) < claimed:
                raise FanEdgeError(
                    f"{folder}: list says {claimed} frames but only {len(files)} images exist"
                )
            self._files[i] = files
        return self._files[i]

    def num_frames(self, i: int) -> int:
        return len(self._frames(i))

    resizes_on_read = True

    def read(self, i: int, indices: np.ndarray, short_side: int | None = None) -> np.ndarray:
        return read_image_frames(self._frames(i), indices, short_side)


def open_source(spec: str, *, size: int = 32, seed: int = 0, num_videos: int = 1000, classes=None):
    """`synthetic` (the built-in benchmark), `synthetic-poses` (the same clips labelled by
    the object's direction: a spatial pretraining task), `synthetic-pairs` (a second
    temporal task: two objects interacting over long clips), a `.csv` of videos, or a
    frame-folder list."""
    if spec == "synthetic":
        return SyntheticActions(num_videos=num_videos, seed=seed, size=size)
    if spec == "synthetic-poses":
        return SyntheticPoses(num_videos=num_videos, seed=seed, size=size)
    if spec == "synthetic-pairs":
        return SyntheticPairs(num_videos=num_videos, seed=seed, size=size)
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        return VideoCSV(path, classes)
    if path.suffix.lower() in (".txt", ".list", ".lst"):
        return FrameFolderList(path, classes=classes)
    raise FanEdgeError(
        f"cannot tell the format of {spec!r}: use 'synthetic', a .csv (path,label) of videos "
        "or a .txt list of 'folder num_frames label' lines"
    )
