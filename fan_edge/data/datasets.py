"""Torch datasets: a clip source (sources.py) + TSN sampling at one or several frame counts.

`ClipDataset` turns a source into (clips, label) where `clips` is a tuple with one
(T_k, 3, H, W) float tensor per requested frame count, all sharing one spatial crop.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from fan_edge.config import MAX_CLASSES
from fan_edge.data.sampling import segment_indices
from fan_edge.data.sources import FrameFolderList, VideoCSV, open_source
from fan_edge.data.transforms import crop, eval_transform, normalize, resize_short

__all__ = ["MAX_CLASSES", "ClipDataset", "FrameFolderList", "VideoCSV", "open_source"]


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
    resize: int | None = None  # shorter side before the crop (None: `size`)
    interpolation: str = "area"  # data/transforms.py INTERPOLATIONS

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
        base = self.resize or self.size
        short = int(rng.integers(base, int(base * 1.15) + 1)) if self.train else base
        if self.train or self.interpolation == "area":
            video = self._read(i, union, short)  # (U, H, W, 3) uint8, shorter side `short`
        else:  # read as stored; eval_transform resizes with the model's own interpolation
            video = self._read(i, union, None)
        if self.train:
            h, w = video.shape[1:3]
            top, left = rng.integers(h - self.size + 1), rng.integers(w - self.size + 1)
            video = normalize(crop(video, self.size, top, left), self.mean, self.std)
        else:
            video = eval_transform(
                video, self.size, self.mean, self.std, self.resize, self.interpolation
            )
        clips, start = [], 0
        for p in picks:
            clips.append(torch.from_numpy(video[inverse[start : start + len(p)]]))
            start += len(p)
        return tuple(clips), self.source.label(i)

    def _read(self, i: int, indices: np.ndarray, short_side: int) -> np.ndarray:
        """The frames resized to `short_side` (as they are read, where the source can)."""
        if getattr(self.source, "resizes_on_read", False):
            return self.source.read(i, indices, short_side)
        frames = self.source.read(i, indices)
        return frames if short_side is None else resize_short(frames, short_side)
