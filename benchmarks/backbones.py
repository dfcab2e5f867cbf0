"""Every full-size backbone: cost against its paper, what FAN adds, one set of weights on
disk, and ONNX Runtime latency on this machine. Prints a markdown table per backbone.

For each full-size preset (untrained weights: sizes, costs and speed do not depend on values):
GFLOPs per sub-network (ours, and the paper's where it publishes one for the same frames and
resolution), parameters of a sub-network and what the FAN adds to one plain model, the size
of the shared FAN bundle against one standalone single-count model, and the median ORT CPU
latency of each sub-network (batch 1, `--iters` runs after one warm-up).

    python benchmarks/backbones.py [--presets r50 mbv2 tea50 uniformer-s slowfast-r50]
                                   [--iters 3] [--work runs/bench_backbones]
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_checkpoint  # noqa: E402

from exporters import export  # noqa: E402
from fan_edge.bundle import Bundle  # noqa: E402
from fan_edge.config import preset  # noqa: E402
from fan_edge.runtime import Predictor  # noqa: E402
from fan_edge.train.api import model_costs  # noqa: E402

PRESETS = ["r50", "mbv2", "tea50", "uniformer-s", "slowfast-r50"]
CLASSES = 174  # Something-Something V1, as the FAN paper's tables


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


def latency_ms(bundle: Path, iters: int) -> dict[int, float]:
    pred = Predictor(bundle, backend="ort-cpu")
    size, out = pred.bundle.input["size"], {}
    for s in pred.bundle.subnetworks:
        x = np.random.default_rng(0).standard_normal((1, s.frames, 3, size, size), np.float32)
        pred.logits(x, s)  # warm-up
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            pred.logits(x, s)
            times.append((time.perf_counter() - t0) * 1e3)
        out[s.frames] = float(np.median(times))
    return out


def one_backbone(name: str, work: Path, iters: int) -> str:
    cfg = preset(name, num_classes=CLASSES)
    frames = list(cfg.frames)
    costs = model_costs(name, frames, None, CLASSES)
    fan = make_checkpoint(work / f"{name}-fan.pt", preset_name=name, frames=frames)
    plain = make_checkpoint(work / f"{name}-one.pt", preset_name=name, frames=frames[-1:])
    shared = export(fan, frames, work / f"{name}-fan")
    one = export(plain, frames[-1:], work / f"{name}-one")
    ms = latency_ms(shared, iters)
    bundle = Bundle(shared)
    lines = [
        f"**{name}** ({cfg.arch}, {cfg.input_size}x{cfg.input_size}, {CLASSES} classes): "
        f"FAN adds {costs['extra_params'] / 1e3:.1f}K parameters to one plain model "
        f"({costs['extra_pct']:.2f}%); shared bundle {size_mb(shared):.1f} MB vs one "
        f"standalone {frames[-1]}F model {size_mb(one):.1f} MB "
        f"(**{size_mb(shared) / size_mb(one):.3f}x**; ST ships {len(frames)}x)",
        "",
        "| frames | GFLOPs (ours) | GFLOPs (paper) | params / sub-network | ORT CPU ms (batch 1) |",
        "|---|---|---|---|---|",
    ]
    for c in costs["subnets"]:
        paper = f"{c['paper_gflops']:g} ({c['paper']})" if "paper" in c else "-"
        lines.append(
            f"| {c['frames']} | {c['gflops']:.2f} | {paper} | {c['params'] / 1e6:.2f}M "
            f"| {ms[c['frames']]:.0f} |"
        )
    assert [s.frames for s in bundle.subnetworks] == frames
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--presets", nargs="+", default=PRESETS)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path("runs/bench_backbones"))
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    t0 = time.time()
    tables = [one_backbone(name, args.work, args.iters) for name in args.presets]
    print(f"\n{machine()}; {time.time() - t0:.0f} s\n")
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
