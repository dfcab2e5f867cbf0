"""Torch datasets: a clip source + TSN sampling at one or several frame counts.

A *source* knows its videos (`__len__`, `classes`, `label(i)`, `num_frames(i)`,
`read(i, indices)`); `ClipDataset` turns it into (clips, label) where `clips` is a tuple with
one (T_k, 3, H, W) float tensor per requested frame count, all sharing one spatial crop.
"""

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fan_edge.data.sampling import segment_indices
from fan_edge.data.synthetic import SyntheticActions, SyntheticPoses
from fan_edge.data.synthetic_pairs import SyntheticPairs
from fan_edge.data.transforms import crop, eval_transform, normalize, resize_short
from fan_edge.data.video import count_frames, list_frame_files, read_image_frames, read_video_frames
from fan_edge.errors import FanEdgeError


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
        with self.csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
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
            classes = [c for c in listed.read_text().splitlines() if c.strip()]
        if classes:
            self.classes = list(classes)
        elif all(n.isdigit() for n in names):  # integer labels: indices, sorted numerically
            self.classes = [str(i) for i in range(max(int(n) for n in names) + 1)]
        else:
            self.classes = sorted(set(names))
        lookup = {c: i for i, c in enumerate(self.classes)}
        self.labels = []
        for line, n in enumerate(names, 2):
            index = lookup.get(n, int(n) if n.isdigit() else -1)
            if not 0 <= index < len(self.classes):
                raise FanEdgeError(f"{self.csv_path}:{line}: label {n!r} is not one of the "
                                   f"{len(self.classes)} classes")  # fmt: skip
            self.labels.append(index)
        self._counts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def label(self, i: int) -> int:
        return self.labels[i]

    def num_frames(self, i: int) -> int:
        if i not in self._counts:
            self._counts[i] = count_frames(self.paths[i])
        return self._counts[i]

    def read(self, i: int, indices: np.ndarray) -> np.ndarray:
        return read_video_frames(self.paths[i], indices)


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
        for lineno, line in enumerate(self.list_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise FanEdgeError(
                    f"{self.list_path}:{lineno}: expected 'folder num_frames label', got {line!r}"
                )
            if not (parts[1].isdigit() and parts[2].isdigit()):
                raise FanEdgeError(f"{self.list_path}:{lineno}: num_frames and label must be "
                                   f"non-negative integers, got {line!r}")  # fmt: skip
            self.items.append((root / parts[0], int(parts[1]), int(parts[2])))
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

    def read(self, i: int, indices: np.ndarray) -> np.ndarray:
        return read_image_frames(self._frames(i), indices)


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


@dataclass
class ClipDataset(Dataset):
    """Samples each video at every count in `frames` (independent TSN samplings).

    Training (`train=True`): random offset per segment and a random crop after resizing the
    shorter side to a random size in [size, 1.15 * size], shared by all K clips. Evaluation:
    segment centres, resize + center crop (the runtime's exact preprocessing).
    No horizontal flip: it would swap classes such as "moving left" and "moving right".
    """

    source: object
    frames: tuple[int, ...]
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool = False
    seed: int = 0
    epoch: int = 0

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        length = self.source.num_frames(i)
        mode = "random" if self.train else "center"
        picks = [segment_indices(length, n, mode=mode, rng=rng) for n in self.frames]
        union, inverse = np.unique(np.concatenate(picks), return_inverse=True)
        video = self.source.read(i, union)  # (U, H, W, 3) uint8
        if self.train:
            video = resize_short(video, int(rng.integers(self.size, int(self.size * 1.15) + 1)))
            h, w = video.shape[1:3]
            top, left = rng.integers(h - self.size + 1), rng.integers(w - self.size + 1)
            video = normalize(crop(video, self.size, top, left), self.mean, self.std)
        else:
            video = eval_transform(video, self.size, self.mean, self.std)
        clips, start = [], 0
        for p in picks:
            clips.append(torch.from_numpy(video[inverse[start : start + len(p)]]))
            start += len(p)
        return tuple(clips), self.source.label(i)
