"""Accuracy versus cost from the runs of benchmarks/reproduce.py.

Reads RUNS/<model>_seed<k>/eval.json of FAN, the standard model and ST, and writes
accuracy_vs_cost.png (top-1 against GFLOPs and against latency measured here) and
accuracy_vs_cost.md.

    python benchmarks/accuracy_plot.py --runs runs/reproduce --out benchmarks/results
"""

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fan_edge.config import ModelConfig  # noqa: E402
from fan_edge.models import build_model  # noqa: E402
from fan_edge.models.cost import subnet_costs  # noqa: E402
from fan_edge.train.checkpoint import load_checkpoint  # noqa: E402

LABELS = {"fan": "FAN", "standard-16": "standard (16F)"}


def measure_latency(checkpoint: Path, frames: list[int], iters: int = 50) -> dict[int, float]:
    """p50 batch-1 latency (ms) of each frame count, PyTorch on this CPU."""
    import time

    import torch

    from fan_edge.train.checkpoint import load_model

    model, ckpt = load_model(checkpoint)
    size = ckpt["model_config"]["input_size"]
    out = {}
    with torch.inference_mode():
        for n in frames:
            x = torch.randn(1, n, 3, size, size)
            times = []
            for i in range(iters + 5):
                t0 = time.perf_counter()
                model(x)
                if i >= 5:
                    times.append((time.perf_counter() - t0) * 1e3)
            out[n] = statistics.median(times)
    return out


def collect(runs: Path) -> tuple[dict, dict]:
    """{model: {frames: [top1 per seed]}} and {frames: GFLOPs} of the tiny model."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    gflops: dict = {}
    for report in sorted(runs.glob("*_seed*/eval.json")):
        name = report.parent.name.rsplit("_seed", 1)[0]
        data = json.loads(report.read_text())
        for n, r in data["results"].items():
            acc[name][int(n)].append(r["top1"])
        if not gflops and (report.parent / "checkpoint.pt").exists():
            cfg = ModelConfig.from_dict(
                load_checkpoint(report.parent / "checkpoint.pt")["model_config"]
            )
            frames = sorted(int(n) for n in data["results"])
            costs = subnet_costs(build_model(cfg), cfg.input_size, frames)
            gflops = {c.frames: c.gflops for c in costs}
    if not acc:
        raise SystemExit(f"error: no */eval.json under {runs}: run benchmarks/reproduce.py first")
    return acc, gflops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--out", type=Path, default=None, help="default: --runs")
    args = p.parse_args()
    out = args.out or args.runs
    acc, gflops = collect(args.runs)
    mean = {m: {n: statistics.fmean(v) for n, v in r.items()} for m, r in acc.items()}
    trained = {"fan": [4, 8, 16], "standard-16": [4, 8, 16]}
    st = {n: mean[f"standard-{n}"][n] for n in (4, 8, 16) if f"standard-{n}" in mean}

    latency = measure_latency(next(args.runs.glob("fan_seed*/checkpoint.pt")), [4, 8, 16])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = (
        (axes[0], gflops, "GFLOPs per clip (tiny TSM-R18, 32x32)"),
        (axes[1], latency, "p50 latency, batch 1, PyTorch CPU (ms)"),
    )
    for ax, cost, label in panels:
        for name, frames in trained.items():
            if name in mean:
                ax.plot(
                    [cost[n] for n in frames],
                    [mean[name][n] for n in frames],
                    "o-",
                    label=LABELS[name],
                )
        if st:
            ax.plot([cost[n] for n in st], list(st.values()), "s--", label="ST (3 models)")
        for n in (4, 8, 16):
            ax.annotate(
                f"{n}F",
                (cost[n], mean.get("fan", {}).get(n, 0)),
                textcoords="offset points",
                xytext=(4, -12),
                fontsize=8,
            )
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Accuracy vs cost, synthetic benchmark")
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_cost.png", dpi=120)

    lines = [
        "| model | frames | GFLOPs | p50 ms (PyTorch CPU) | top-1 (%) |",
        "|---|---|---|---|---|",
    ]
    for name, frames in trained.items():
        label = LABELS[name]
        lines += [
            f"| {label} | {n} | {gflops[n]:.3f} | {latency[n]:.2f} | {mean[name][n]:.1f} |"
            for n in frames
            if name in mean
        ]
    lines += [f"| ST | {n} | {gflops[n]:.3f} | {latency[n]:.2f} | {v:.1f} |" for n, v in st.items()]
    (out / "accuracy_vs_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out / 'accuracy_vs_cost.png'}")


if __name__ == "__main__":
    main()
