"""Decoding clips with OpenCV. Torch-free (the runtime uses it).

Container headers lie about frame counts and FFmpeg seeking is not frame-exact, so frames
are counted by decoding (`grab`) and only the sampled ones are converted (`retrieve`).
"""

from pathlib import Path

import cv2
import numpy as np

from fan_edge.errors import FanEdgeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise FanEdgeError(f"no such video file: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FanEdgeError(f"cannot decode {path}: not a video OpenCV can read (try an .mp4)")
    return cap


def count_frames(path: str | Path) -> int:
    """Number of decodable frames, counted by decoding (the header's count is ignored)."""
    path = Path(path)
    cap = _open(path)
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise FanEdgeError(f"{path} has no decodable frames: is the file empty or truncated?")
    return n


def read_video_frames(path: str | Path, indices: np.ndarray) -> np.ndarray:
    """Frames at `indices` (any order, repeats allowed) as (n, H, W, 3) uint8 RGB."""
    path = Path(path)
    wanted = {int(i) for i in indices}
    got: dict[int, np.ndarray] = {}
    cap = _open(path)
    i = 0
    try:
        while len(got) < len(wanted) and cap.grab():
            if i in wanted:
                ok, frame = cap.retrieve()
                if not ok:
                    raise FanEdgeError(f"{path}: frame {i} could not be decoded")
                got[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    missing = wanted - got.keys()
    if missing:
        raise FanEdgeError(f"{path}: only {i} frames decodable, needed frame {max(missing)}")
    return np.stack([got[int(k)] for k in indices])


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files of a frame folder in name order (img_00001.jpg, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FanEdgeError(f"no such frame folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FanEdgeError(f"frame folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image_frames(files: list[Path], indices: np.ndarray) -> np.ndarray:
    """Images `files[i]` for i in `indices`, as (n, H, W, 3) uint8 RGB."""
    out = []
    for i in indices:
        img = cv2.imread(str(files[int(i)]), cv2.IMREAD_COLOR)
        if img is None:
            raise FanEdgeError(f"cannot decode image {files[int(i)]}")
        out.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    if len({f.shape for f in out}) > 1:
        raise FanEdgeError(f"frames in {files[0].parent} differ in size: resize them to one size")
    return np.stack(out)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 12.0) -> None:
    """Write (L, H, W, 3) uint8 RGB frames as an MPEG-4 video (temp file, then rename)."""
    from fan_edge.fileio import atomic_path

    h, w = frames.shape[1:3]
    with atomic_path(Path(path)) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        try:
            if not writer.isOpened():
                raise FanEdgeError(f"OpenCV cannot write {path}: no MPEG-4 encoder in this build")
            for f in frames:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
