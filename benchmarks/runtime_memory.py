"""Runtime memory and latency: 1 vs all 3 sub-networks loaded, the default (one session
holding every sub-network, weights once) vs the speed options (a session each, fused).

Each measurement runs in a fresh process that never imports torch: the process's resident
memory (VmRSS) after loading the sessions, and again after running each loaded sub-network
once (weights paged in, activations allocated). Then p50 latency per sub-network (batch 1).

    python benchmarks/runtime_memory.py [--bundle runs/bench_size/fan_shared] [--iters 10]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def child(bundle: str, share: bool, load: int, iters: int, backend: str = "ort-cpu") -> dict:
    import numpy as np

    from fan_edge.runtime import Predictor

    before = rss_mb()
    pred = Predictor(bundle, backend=backend, share_weights=share)
    subs = pred.bundle.subnetworks[-load:] if load < 3 else pred.bundle.subnetworks
    if share and backend == "ort-cpu" and load < 3:
        # The default layout with one sub-network resident: a joint session of it alone.
        joint = pred.engine._joint_session(pred.bundle, tuple(s.frames for s in subs))
        pred._sessions.update({s.frames: joint.runner(s.frames) for s in subs})
    for s in subs:
        pred.session(s)
    loaded = rss_mb() - before
    size = pred.bundle.input["size"]
    latency = {}
    for s in subs:
        x = np.random.default_rng(0).standard_normal((1, s.frames, 3, size, size), np.float32)
        pred.logits(x, s)  # first run: finishes lazy initialisation
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            pred.logits(x, s)
            times.append((time.perf_counter() - t0) * 1e3)
        latency[s.frames] = float(np.median(times)) if times else None
    assert "torch" not in sys.modules
    return {
        "base_mb": before,
        "loaded_mb": before + loaded,
        "run_mb": rss_mb(),
        "latency_ms": latency,
    }


def measure(bundle: Path, share: bool, load: int, iters: int, backend: str = "ort-cpu") -> dict:
    """`child` in a fresh process that never imports torch."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--bundle",
        str(bundle),
        "--share",
        str(int(share)),
        "--load",
        str(load),
        "--iters",
        str(iters),
        "--backend",
        backend,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", type=Path, default=Path("runs/bench_size/fan_shared"))
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--share", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--load", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--backend", default="ort-cpu", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        result = child(str(args.bundle), bool(args.share), args.load, args.iters, args.backend)
        print(json.dumps(result))
        return
    if not args.bundle.exists():
        sys.exit(f"error: no bundle at {args.bundle}: run benchmarks/bundle_size.py first")
    from common import machine

    print(
        f"bundle {args.bundle}; {machine()}; batch 1; p50 of {args.iters} runs; "
        "memory is the whole process's RSS\n"
    )
    print(
        "| session options | loaded: 1 (16F) / all 3 | ratio | after a run: 1 / all 3 | "
        "ratio | p50 4F / 8F / 16F (ms) |"
    )
    print("|---|---|---|---|---|---|")
    base = None
    for share, name in (
        (True, "default: one session for every sub-network (runtime/joint.py)"),
        (False, "speed: ORT defaults + alteration folded at load"),
    ):
        one = measure(args.bundle, share, 1, 0)
        allr = measure(args.bundle, share, 3, args.iters)
        base = one["base_mb"]
        lat = " / ".join(
            f"{allr['latency_ms'][k]:.0f}" for k in sorted(allr["latency_ms"], key=int)
        )
        cells = []
        for key in ("loaded_mb", "run_mb"):
            a, b = one[key], allr[key]
            cells += [f"{a:.0f} / {b:.0f} MB", f"{b / a:.2f}x"]
        print(f"| {name} | {' | '.join(cells)} | {lat} |")
    print(f"\nbefore loading anything (python, numpy, OpenCV): {base:.0f} MB")


if __name__ == "__main__":
    main()
