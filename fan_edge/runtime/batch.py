"""Many inputs at once: clips are read in worker threads while the engine classifies.

Reading (demux, decode, convert) runs in FFmpeg and OpenCV code that releases the GIL, so
`jobs` readers keep the engine fed; results come back in input order, and a bad input is
an error in its own row, not the end of the batch.
"""

import csv
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fan_edge.data.video import IMAGE_SUFFIXES
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_path
from fan_edge.runtime.predictor import Prediction, Predictor

VIDEO_SUFFIXES = (
    ".mp4",
    ".mkv",
    ".webm",
    ".mov",
    ".avi",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".ts",
    ".gif",
    ".wmv",
    ".flv",
    ".3gp",
)
OUTPUT_SUFFIXES = (".jsonl", ".json", ".csv")
FORMATS = f"{', '.join(OUTPUT_SUFFIXES[:-1])} or {OUTPUT_SUFFIXES[-1]}"


@dataclass
class Outcome:
    input: str
    prediction: Prediction | None = None
    error: str = ""

    def to_dict(self) -> dict:
        if self.prediction is None:
            return {"input": self.input, "error": self.error}
        return {**self.prediction.to_dict(), "error": ""}


def expand_inputs(paths: list[Path]) -> list[str]:
    """Files as given; a folder of videos gives its videos (sorted, recursively); a folder
    of images is one input (a clip as frames). A missing path stays, to fail in its row."""
    out: list[str] = []
    for p in paths:
        if p.is_dir() and not any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()):
            videos = sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise FanEdgeError(
                    f"{p} holds no videos ({', '.join(VIDEO_SUFFIXES)}) and no "
                    "frames: give video files or a folder of frames"
                )
            out += [str(v) for v in videos]
        else:
            out.append(str(p))
    return out


def predict_many(
    predictor: Predictor,
    inputs: list[str],
    *,
    jobs: int = 2,
    budget=None,
    frames: int | None = None,
    top_k: int = 5,
    allow_over_budget: bool = False,
) -> Iterator[Outcome]:
    """Outcomes in input order; `jobs` threads read ahead (at most 2 x jobs clips held)."""
    if jobs < 1:
        raise FanEdgeError(f"--jobs must be at least 1, got {jobs}")

    def read(path: str):
        return predictor.read_for(path, budget, frames, allow_over_budget)

    with ThreadPoolExecutor(jobs) as pool:
        pending = []
        queue = iter(inputs)
        for path in queue:  # fill the window, then take one result per new submission
            pending.append((path, pool.submit(read, path)))
            if len(pending) >= 2 * jobs:
                yield _finish(predictor, *pending.pop(0), top_k)
        for item in pending:
            yield _finish(predictor, *item, top_k)


def _finish(predictor: Predictor, path: str, future, top_k: int) -> Outcome:
    try:
        return Outcome(path, predictor.classify(*future.result(), top_k))
    except FanEdgeError as e:
        return Outcome(path, error=str(e))
    except Exception as e:  # a bug or a decoder failure we did not foresee: still one row
        return Outcome(path, error=f"unexpected {type(e).__name__}: {e}")


def write_outcomes(path: Path, outcomes: list[Outcome]) -> None:
    """JSON Lines (.jsonl), a JSON list (.json) or CSV (.csv), written atomically."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise FanEdgeError(f"cannot write {path}: use a {FORMATS} file")
    rows = [o.to_dict() for o in outcomes]
    if suffix == ".jsonl":
        text = "".join(json.dumps(r) + "\n" for r in rows)
    elif suffix == ".json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        buf = io.StringIO()
        cols = [
            "input",
            "label",
            "prob",
            "frames",
            "trained_frames",
            "input_frames",
            "decoded_frames",
            "index_ms",
            "decode_ms",
            "preprocess_ms",
            "infer_ms",
            "total_ms",
            "predicted_total_ms",
            "backend",
            "reason",
            "error",
        ]
        w = csv.DictWriter(buf, cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            if not r["error"]:
                r = {
                    **r,
                    "label": r["labels"][0],
                    "prob": f"{r['probs'][0]:.4f}",
                    "predicted_total_ms": (r["predicted"] or {}).get("total_ms", ""),
                }
            w.writerow({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()})
        text = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_text(text)
