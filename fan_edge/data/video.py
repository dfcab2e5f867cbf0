"""Clips for training and the demo: video files (read by the runtime's planned decoder),
folders of frames, and writing a clip as an MPEG-4 video. Torch-free."""

from pathlib import Path

import cv2
import numpy as np

from fan_edge.data.transforms import resize_short
from fan_edge.errors import FanEdgeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def count_frames(path: str | Path) -> int:
    """Frames in a video file (counted from its packets; by decoding where they mislead)."""
    from fan_edge.runtime.video import open_video

    with open_video(Path(path)) as video:
        return video.index.frames


def read_video_frames(
    path: str | Path, indices: np.ndarray, short_side: int | None = None
) -> np.ndarray:
    """Frames at `indices` (any order, repeats allowed) as (n, H, W, 3) uint8 RGB, upright.

    Decodes by plan (the runtime's reader): only the frames that lead to the wanted ones.
    `short_side`: each frame is resized as it is decoded (as `transforms.resize_short` does),
    so memory is bounded by that size, not the video's.
    """
    from fan_edge.runtime.video import make_plan, open_video

    with open_video(Path(path)) as video:
        n = video.index.frames
        bad = [int(i) for i in indices if not 0 <= int(i) < n]
        if bad:
            raise FanEdgeError(f"{path}: only {n} frames decodable, needed frame {max(bad)}")
        return video.read_plan(make_plan(video.index, indices), short_side)[0]


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files of a frame folder in name order (img_00001.jpg, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FanEdgeError(f"no such frame folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FanEdgeError(f"frame folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image_frames(
    files: list[Path], indices: np.ndarray, short_side: int | None = None
) -> np.ndarray:
    """Images `files[i]` for i in `indices`, as (n, H, W, 3) uint8 RGB; `short_side`: each
    resized as it is read (as `transforms.resize_short` does)."""
    out, shapes = [], set()
    for i in indices:
        img = cv2.imread(str(files[int(i)]), cv2.IMREAD_COLOR)
        if img is None:
            raise FanEdgeError(f"cannot decode image {files[int(i)]}")
        shapes.add(img.shape)
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        out.append(resize_short(rgb[None], short_side)[0] if short_side else rgb)
    if len(shapes) > 1:
        raise FanEdgeError(f"frames in {files[0].parent} differ in size: resize them to one size")
    return np.stack(out)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 12.0) -> None:
    """Write (L, H, W, 3) uint8 RGB frames as an H.264 video (temp file, then rename).

    Odd sizes are written 4:4:4 (4:2:0 needs even ones); x264's default of a keyframe every
    250 frames and 3 B-frames."""
    from fan_edge.runtime.video.clips import encode

    h, w = frames.shape[1:3]
    encode(
        path,
        frames,
        w,
        h,
        fps=round(fps),
        gop=250,
        pix_fmt="yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p",
    )
