"""Write the synthetic dataset as real video files, so every reader can be exercised."""

import csv
import json
from pathlib import Path

from fan_edge.data.synthetic import SyntheticActions
from fan_edge.data.video import write_video
from fan_edge.fileio import atomic_dir, write_json

# Written last into every folder `fan-edge synth` makes: `--overwrite` replaces only those.
MARKER = "synthetic.json"
SCHEMA = "fan-edge-synthetic"


def owned_files(path: Path) -> set[str] | None:
    """The files of a `fan-edge synth` folder, or None if `path` is not one."""
    try:
        info = json.loads((path / MARKER).read_bytes())
        if info.get("schema") != SCHEMA:
            return None
        n = int(info["num_videos"])
        if not 0 < n < 1_000_000:  # synth writes six-digit names
            return None
        videos = {f"videos/{i:06d}.mp4" for i in range(n)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return {MARKER, "annotations.csv", "classes.txt", *videos}


def write_synthetic(
    out: str | Path, *, num_videos: int, seed: int = 0, size: int = 32, overwrite: bool = False
) -> Path:
    """Create `out/videos/NNNNNN.mp4`, `out/annotations.csv` (path,label), `out/classes.txt`."""
    out = Path(out)
    data = SyntheticActions(num_videos=num_videos, seed=seed, size=size)
    with atomic_dir(out, overwrite=overwrite, owned=owned_files, kind="synthetic dataset") as tmp:
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
        write_json(
            tmp / MARKER, {"schema": SCHEMA, "num_videos": num_videos, "seed": seed, "size": size}
        )
    return out / "annotations.csv"
