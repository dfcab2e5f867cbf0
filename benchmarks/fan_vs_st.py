"""FAN versus Separated Training and the standard model on the synthetic benchmark.

Trains, per seed: a standard model at each of 4/8/16 frames (ST; the 16-frame one is also
"the standard model") and one FAN over (4, 8, 16), all with the same budget (epochs, data,
optimiser), then evaluates each at 2..20 frames. Resumable: finished runs are skipped.
Writes results.json and results.md into --out.

    python benchmarks/fan_vs_st.py --out runs/fan_vs_st --seeds 0 1
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from fan_edge.fileio import write_json
from fan_edge.train.api import evaluate_checkpoint, train_from_options

EVAL_FRAMES = [2, 4, 6, 8, 10, 12, 16, 20]


def run(name: str, out: Path, seed: int, args, mode: str, frames: list[int]) -> dict:
    folder = out / f"{name}_seed{seed}"
    report_path = folder / "eval.json"
    if report_path.exists():
        return json.loads(report_path.read_text())
    print(f"== {name} seed {seed}", flush=True)
    train_from_options(
        out=folder, data="synthetic", val=None, mode=mode, preset="tiny", frames=frames,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, kd_lambda=1.0, seed=seed,
        kd_warmup_epochs=args.kd_warmup if mode == "fan" else 0.0,
        num_videos=args.num_videos, num_val=args.num_val, resume=True,
    )  # fmt: skip
    report = evaluate_checkpoint(folder / "checkpoint.pt", EVAL_FRAMES)
    write_json(report_path, report)
    return json.loads(report_path.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/fan_vs_st"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--kd-warmup", type=float, default=6.0, help="FAN: epochs to ramp lambda")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--num-videos", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=500)
    args = p.parse_args()

    runs = {"FAN": ("fan", [4, 8, 16]), "standard-16": ("standard", [16]),
            "standard-4": ("standard", [4]), "standard-8": ("standard", [8])}  # fmt: skip
    results: dict[str, dict[int, list[float]]] = {}
    for seed in args.seeds:
        for name, (mode, frames) in runs.items():
            rep = run(name, args.out, seed, args, mode, frames)
            for n, r in rep["results"].items():
                results.setdefault(name, {}).setdefault(int(n), []).append(r["top1"])

    def mean(name, n):
        return statistics.fmean(results[name][n])

    def cell(name, n):
        v = results[name][n]
        spread = f" ± {statistics.pstdev(v):.1f}" if len(v) > 1 else ""
        return f"{statistics.fmean(v):.1f}{spread}"

    st = {n: f"standard-{n}" for n in (4, 8, 16)}
    lines = [
        f"Top-1 (%) on the synthetic benchmark, mean ± spread over seeds {args.seeds}; "
        f"{args.epochs} epochs, {args.num_videos} training / {args.num_val} validation clips; "
        f"FAN's distillation weight ramps up over {args.kd_warmup:g} epochs.",
        "",
        "| model | " + " | ".join(f"{n}F" for n in EVAL_FRAMES) + " |",
        "|---|" + "---|" * len(EVAL_FRAMES),
    ]
    for name in runs:
        lines.append(f"| {name} | " + " | ".join(cell(name, n) for n in EVAL_FRAMES) + " |")
    lines.append("| ST (each at its own count) | " + " | ".join(
        cell(st[n], n) if n in st else "" for n in EVAL_FRAMES) + " |")  # fmt: skip
    lines += ["", "| frames | ST | FAN | FAN - ST |", "|---|---|---|---|"]
    for n in (4, 8, 16):
        d = mean("FAN", n) - mean(st[n], n)
        lines.append(f"| {n} | {cell(st[n], n)} | {cell('FAN', n)} | {d:+.1f} |")
    td = mean("standard-4", 4) - mean("standard-16", 4)
    lines += ["", f"Temporal Deviation: standard-16 at 4 frames is {td:.1f} points below "
              "standard-4 at 4 frames."]  # fmt: skip
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    write_json(args.out / "results.json", {"args": vars(args) | {"out": str(args.out)},
                                           "top1": results})  # fmt: skip
    print(text)


if __name__ == "__main__":
    sys.exit(main())
