"""Whole-clip cost, side by side in one run: today's OpenCV reader against the decode plan.

Generates 10 s, 30 fps H.264 clips with PyAV's encoder (480p, 720p, 1080p; a keyframe every
30 and every 250 frames), then measures on each, per stage (index, decode, preprocess,
inference) and in total, the OpenCV path (count by decoding, decode again up to the last
sampled frame) and the PyAV plan, with the demo bundle and with TSM-R50 FAN at 4/8/16 frames
(untrained: speed does not depend on the weights). Also: counting frames, decoding 8 frames
against the plan's own lower bound (frames it must decode x this machine's cost per decoded
frame in one sequential pass), and whole-clip budgets: each bundle is profiled with
`fan-edge bench` first, then every clip's predicted total is compared with the measured one.

    python benchmarks/end_to_end.py [--demo models/demo] [--work runs/end_to_end] [--repeats 5]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cached_bundle, machine, make_checkpoint  # noqa: E402

from fan_edge.fileio import atomic_path  # noqa: E402
from fan_edge.runtime import Predictor  # noqa: E402
from fan_edge.runtime.bench import bench  # noqa: E402
from fan_edge.runtime.profile import latency_for  # noqa: E402
from fan_edge.runtime.video import open_video  # noqa: E402
from fan_edge.runtime.video.clips import write_clip  # noqa: E402
from fan_edge.runtime.video.pyav import THREAD_TYPE  # noqa: E402

SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
GOPS = (30, 250)
SECONDS, FPS = 10, 30


def clips(folder: Path) -> dict[str, Path]:
    out = {}
    for name, (w, h) in SIZES.items():
        for gop in GOPS:
            path = folder / f"{name}_gop{gop}.mp4"
            if not path.exists():
                print(f"encoding {path}", flush=True)
                write_clip(path, SECONDS * FPS, w, h, fps=FPS, gop=gop)
            out[f"{name}, keyframe every {gop}"] = path
    return out


def median(fn, repeats: int):
    """(median ms of fn's returned value or wall time, last result)."""
    values, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        values.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(values)), result


def typical(predictions):
    """The run with the median total (its stages add up to it)."""
    return sorted(predictions, key=lambda r: r.total_ms)[len(predictions) // 2]


def sequential_ms_per_frame(path: Path) -> float:
    """This machine's cost of one decoded frame: one pass as the reader decodes, no conversion."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = THREAD_TYPE
        t0 = time.perf_counter()
        n = sum(1 for _ in c.decode(stream))
        return (time.perf_counter() - t0) * 1e3 / n


def r50_bundle(work: Path) -> Path:
    ckpt = work / "r50.pt"
    if not ckpt.exists():
        make_checkpoint(ckpt)
    return cached_bundle(ckpt, work / "r50-bundle")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--demo", type=Path, default=Path("models/demo"), help="the demo bundle")
    p.add_argument("--work", type=Path, default=Path("runs/end_to_end"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/end_to_end.md"))
    args = p.parse_args()
    if not (args.demo / "manifest.json").exists():
        raise SystemExit(f"error: no bundle at {args.demo}: run `make demo` first")
    args.work.mkdir(parents=True, exist_ok=True)
    videos = clips(args.work / "clips")
    bundles = {"demo (tiny)": args.demo, "TSM-R50 FAN": r50_bundle(args.work)}
    lines = [
        f"# End-to-end cost of a clip: {machine()}",
        "",
        f"Made by `python benchmarks/end_to_end.py`; median of {args.repeats} runs each; "
        "10 s, 30 fps H.264 clips from PyAV's libx264 (veryfast, 3 B-frames). "
        "*OpenCV* is the reader before the decode plan (count by decoding, decode again); "
        "*plan* is `fan-edge run`'s reader now. Everything ran in this one process; the "
        "end-to-end rows in rounds (each row once per round).",
        "",
    ]

    # -- counting frames ----------------------------------------------------------------
    lines += [
        "## Counting the frames",
        "",
        "| clip | plan: demux index ms | OpenCV: count by decoding ms | speed-up |",
        "|---|---|---|---|",
    ]
    for name, path in videos.items():
        ours = float(np.median([open_video(path).index_ms for _ in range(5)]))
        theirs = float(np.median([open_video(path, "opencv").index_ms for _ in range(2)]))
        lines.append(f"| {name} | {ours:.1f} | {theirs:.0f} | {theirs / ours:.0f}x |")
        print(lines[-1], flush=True)

    # -- 8 frames, decode only ----------------------------------------------------------
    lines += [
        "",
        "## Reading 8 sampled frames (index + decode + convert, resized to 224)",
        "",
        "| clip | OpenCV ms | plan ms | speed-up | frames the plan decodes (at most) | "
        "frames decoded | lower bound ms (plan frames x cost per frame) | plan / bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, path in videos.items():

        def read(decoder, path=path):
            with open_video(path, decoder) as v:
                return v.read(8, 224)[1]

        old, _ = median(lambda: read("opencv"), args.repeats)  # noqa: B023
        new, rec = median(lambda: read("pyav"), args.repeats)  # noqa: B023
        bound = rec.planned * sequential_ms_per_frame(path)
        lines.append(
            f"| {name} | {old:.0f} | {new:.0f} | {old / new:.1f}x | {rec.planned} | "
            f"{rec.decoded} | {bound:.0f} | {new / bound:.2f} |"
        )
        print(lines[-1], flush=True)

    # -- end to end, per bundle ---------------------------------------------------------
    for label, bundle in bundles.items():
        print(f"profiling {label} (fan-edge bench)", flush=True)
        bench(bundle, backend="ort-cpu")  # the command's defaults: 20 runs after 3 warm-up
        new = Predictor(bundle, backend="ort-cpu", eager=True)
        old = Predictor(bundle, backend="ort-cpu", eager=True, decoder="opencv")
        latency = latency_for(new.bundle, "ort-cpu")
        lines += [
            "",
            f"## {label}: one clip end to end (ms), and whole-clip budget predictions",
            "",
            "| clip | frames | OpenCV: index + decode + preprocess + infer = total | "
            "plan: index + decode (frames) + preprocess + infer = total | "
            f"plan's total, fastest-slowest of {args.repeats} | speed-up | "
            "predicted total | predicted / measured |",
            "|---|---|---|---|---|---|---|---|",
        ]
        # Every row once, then again: a slow stretch of the shared machine lands on all rows
        # alike instead of on a few (as `bench` times its sub-networks).
        rows = [(name, path, n) for name, path in videos.items() for n in (4, 8, 16)]
        olds, news = {r: [] for r in rows}, {r: [] for r in rows}
        for i in range(args.repeats):
            print(f"  round {i + 1} of {args.repeats}", flush=True)
            for row in rows:
                olds[row].append(old.predict(row[1], frames=row[2]))
                news[row].append(new.predict(row[1], frames=row[2]))
        for row in rows:
            name, path, n = row
            a, b = typical(olds[row]), typical(news[row])
            spread = sorted(r.total_ms for r in news[row])
            with open_video(path) as v:
                predicted = new.predict_stages(v, latency)[n]["total_ms"]
            lines.append(
                f"| {name} | {n} | {a.index_ms:.0f} + {a.decode_ms:.0f} + "
                f"{a.preprocess_ms:.1f} + {a.infer_ms:.0f} = **{a.total_ms:.0f}** | "
                f"{b.index_ms:.1f} + {b.decode_ms:.0f} ({b.decoded_frames}) + "
                f"{b.preprocess_ms:.1f} + {b.infer_ms:.0f} = **{b.total_ms:.0f}** | "
                f"{spread[0]:.0f}-{spread[-1]:.0f} | "
                f"{a.total_ms / b.total_ms:.1f}x | {predicted:.0f} | "
                f"{predicted / b.total_ms:.2f} |"
            )
            print(lines[-1], flush=True)
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
