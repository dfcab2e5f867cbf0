"""Folders of frames (img_00001.jpg, ...): the index is the sorted file list."""

import cv2
import numpy as np

from fan_edge.data.video import list_frame_files, read_image_frames
from fan_edge.runtime.video.plan import Plan, StreamIndex
from fan_edge.runtime.video.source import VideoSource


class FolderSource(VideoSource):
    name = "folder"

    def _open(self) -> None:
        self._files = list_frame_files(self.path)
        first = cv2.imread(str(self._files[0]), cv2.IMREAD_UNCHANGED)
        h, w = first.shape[:2] if first is not None else (0, 0)
        # every image stands alone: reading frame i needs only file i
        self.index = StreamIndex(len(self._files), tuple(range(len(self._files))), w, h, "image")

    def _read(
        self, plan: Plan, short_side: int | None, resample: bool
    ) -> tuple[np.ndarray, tuple, int, str]:
        unique = sorted(set(plan.indices))
        # each image resized as it is read: memory is bounded by the model's input
        images = read_image_frames(self._files, np.asarray(unique), short_side)
        frames = images[[unique.index(i) for i in plan.indices]]
        return frames, plan.indices, len(unique), ""
