"""`fan-edge stream` on a 720p 30 fps file played in real time (`--realtime`), in one run.

1. The tiny bundle (the demo's architecture, models/tiny-synthetic), no budget: does capture
   keep up (no dropped frames) and does every stride give a result?
2. TSM-R50 FAN 4/8/16 (untrained: latency does not depend on the weights) under a window
   latency budget, the CPU to itself: which sub-network the controller settles on.
3. The same, with CPU load injected for the middle third of the clip (busy processes the
   benchmark starts, each ending on its own after that third): the controller steps down when
   the load starts and back up when it stops.

Per run and phase: sustained input fps, dropped frames, skipped windows, p50/p90 window
latency (window close to result) and the sub-network histogram. The 720p clip is generated
(H.264, keyframe every 30 frames) and kept in --work. About 4 minutes; the tables go to
benchmarks/results/stream.md (with --only, to --work).

    python benchmarks/stream.py [--work runs/bench_stream] [--budget 1000] [--seconds 60]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cached_bundle, machine, make_checkpoint  # noqa: E402

from fan_edge.runtime import Predictor  # noqa: E402

TINY = Path("models/tiny-synthetic/bundle")
RESULTS = Path("benchmarks/results/stream.md")
BUSY = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def clip(work: Path, seconds: int) -> Path:
    from fan_edge.runtime.video.clips import write_clip

    path = work / f"720p30_{seconds}s.mp4"
    if not path.exists():
        print(f"encoding {path} ...", flush=True)
        write_clip(path, 30 * seconds, 1280, 720, gop=30)
    return path


def play(bundle: Path, video: Path, *, load: tuple[float, float, int] | None = None, **options):
    """Stream `video` in real time; `load` = (start s, end s, processes) of busy processes.
    Returns the results and the summary."""
    predictor = Predictor(bundle)
    stream = predictor.stream(str(video), realtime=True, **options)
    results, procs, t0 = [], [], None
    for r in stream:
        results.append(r)
        if load and not procs and r.time >= load[0]:  # the source's clock, as played
            code = BUSY.format(seconds=load[1] - r.time)
            procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(load[2])]
            t0 = r.time
    for p in procs:
        p.wait(timeout=120)
    return results, stream.summary, t0


def phase_row(
    name: str, results, budget: float | None, expected: int | None = None, before=None
) -> list:
    """A table row; `before`: the last result before this phase (its counts are subtracted)."""
    if not results:
        return [name, 0, "", "", "", "", "", ""]
    total = np.array([r.total_ms for r in results])
    hist = {}
    for r in results:
        hist[r.subnetwork] = hist.get(r.subnetwork, 0) + 1
    return [
        name,
        f"{len(results)}" + (f" of {expected}" if expected is not None else ""),
        f"{np.percentile(total, 50):.0f}",
        f"{np.percentile(total, 90):.0f}",
        " ".join(f"{k}F x{v}" for k, v in sorted(hist.items())),
        "" if budget is None else str(int((total > budget).sum())),
        f"{results[-1].dropped_frames - (before.dropped_frames if before else 0)}",
        f"{results[-1].skipped_windows - (before.skipped_windows if before else 0)}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("runs/bench_stream"))
    ap.add_argument("--seconds", type=int, default=60, help="length of the 720p clip")
    ap.add_argument("--budget", type=float, default=1100.0, help="TSM-R50 window budget, ms")
    ap.add_argument("--load", type=int, default=1, help="busy processes in the middle third")
    ap.add_argument("--only", choices=("tiny", "r50"), default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    video = clip(args.work, args.seconds)
    report = {"machine": machine(), "clip": f"{video.name} (1280x720, 30 fps, H.264)", "runs": []}
    lines = [f"machine: {report['machine']}", f"clip: {report['clip']}", ""]
    header = (
        "| run | windows | p50 ms | p90 ms | sub-networks | over budget | dropped frames |"
        " skipped windows |"
    )
    lines += [header, "|---|---|---|---|---|---|---|---|"]

    def add(name, results, summary, expected=None, phase=None, budget=None, before=None):
        title = name if phase is None else f"{name}: {phase}"
        row = phase_row(title, results, budget, expected, before)
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
        print(lines[-1], flush=True)

    if args.only in (None, "tiny"):
        results, summary, _ = play(TINY, video, stride=0.5, window=2.0)
        # windows that end by the end of the last frame (it lasts one frame interval)
        expected = int((summary.source_seconds + 1 / 30 - 2.0) / 0.5 + 1e-9) + 1
        add("tiny (demo architecture), 2 s window, 0.5 s stride", results, summary, expected)
        report["runs"].append({"run": "tiny", "summary": summary.to_dict(), "expected": expected})
        lines.append(f"  summary: {summary.line()}")
    if args.only in (None, "r50"):
        ckpt = args.work / "r50_fan.pt"
        if not ckpt.exists():
            make_checkpoint(ckpt)
        r50 = cached_bundle(ckpt, args.work / "r50_fan")
        options = {"window": 2.0, "stride": 1.0, "budget": f"{args.budget:g}ms"}
        results, summary, _ = play(r50, video, **options)
        add(f"TSM-R50, budget {args.budget:g} ms, idle CPU", results, summary, budget=args.budget)
        lines.append(f"  summary: {summary.line()}")
        report["runs"].append({"run": "r50 idle", "summary": summary.to_dict()})
        third = args.seconds / 3
        results, summary, started = play(r50, video, load=(third, 2 * third, args.load), **options)
        name = f"TSM-R50, budget {args.budget:g} ms, {args.load} busy process(es)"
        before = [r for r in results if r.time < third]
        during = [r for r in results if third <= r.time < 2 * third]
        after = [r for r in results if r.time >= 2 * third]
        previous = None
        for phase, part in (("before", before), ("load", during), ("after", after)):
            add(name, part, summary, phase=phase, budget=args.budget, before=previous)
            previous = part[-1] if part else previous
        lines.append(f"  summary: {summary.line()}")
        lines.append(
            "  windows (t s: sub-network, ms): "
            + ", ".join(f"{r.time:.0f}: {r.subnetwork}F {r.total_ms:.0f}" for r in results)
        )
        report["runs"].append(
            {
                "run": "r50 load",
                "load_from_s": started,
                "summary": summary.to_dict(),
                "windows": [r.to_dict() for r in results],
            }
        )
    out = args.work / "stream.json"
    out.write_text(json.dumps(report, indent=1))
    # the full run is the one README quotes; a partial one stays in --work
    results = RESULTS if args.only is None else args.work / "RESULTS.md"
    results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
