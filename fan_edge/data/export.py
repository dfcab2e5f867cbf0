"""Write the synthetic dataset as real video files, so every reader can be exercised."""

import csv
from pathlib import Path

from fan_edge.data.synthetic import SyntheticActions
from fan_edge.data.video import write_video
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_dir


def write_synthetic(
    out: str | Path, *, num_videos: int, seed: int = 0, size: int = 32, overwrite: bool = False
) -> Path:
    """Create `out/videos/NNNNNN.mp4`, `out/annotations.csv` (path,label), `out/classes.txt`."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FanEdgeError(f"{out} already exists: choose another folder or pass --overwrite")
    data = SyntheticActions(num_videos=num_videos, seed=seed, size=size)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "videos").mkdir()
        rows = []
        for i in range(num_videos):
            rel = f"videos/{i:06d}.mp4"
            write_video(tmp / rel, data.render(i))
            rows.append((rel, data.classes[data.label(i)]))
        with (tmp / "annotations.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            w.writerows(rows)
        (tmp / "classes.txt").write_text("\n".join(data.classes) + "\n")
    return out / "annotations.csv"
