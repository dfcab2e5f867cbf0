"""Learning curves of a sweep's validated runs (`reproduce.py --protocol scratch`).

Reads each run's metrics.json (validation top-1 per epoch at its trained counts, wall seconds
and frames through the network per epoch) and gives: the curves per count (FAN against the
single-count model of that count, which is ST's model there), when each model leaves the
initial plateau, what each costs to train, the issue's targets checked seed by seed, and a
plot.
"""

import statistics
from pathlib import Path

from fan_edge.experiments.claims import Claim, per_seed
from fan_edge.experiments.sweep import read_report
from fan_edge.fileio import atomic_path
from fan_edge.frames import DEFAULT_FRAMES
from fan_edge.train.api import st_run_name

COUNTS = DEFAULT_FRAMES
ST_PARTS = tuple(st_run_name(n) for n in COUNTS)  # the runs of Separated Training
# FAN-like runs drawn against the single-count model of each count
FANS = ("fan", "fan-paper-recipe")
FIRST_TRACKED_EPOCH = 6  # the target: FAN tracks standard-16 from epoch 6 on
TRACK_SLACK, END_SLACK = 2.0, 0.5


def load(out: Path, keys, seeds) -> tuple[dict[str, list[list[dict]]], int]:
    """Per run, per seed, the epochs of its metrics.json (runs without one are left out),
    and the task's number of classes."""
    found, num_classes = {}, 0
    for key in keys:
        paths = [out / f"{key}_seed{s}" / "metrics.json" for s in seeds]
        if all(p.exists() for p in paths):
            metrics = [read_report(p) for p in paths]
            found[key] = [m["epochs"] for m in metrics]
            num_classes = metrics[0]["model_config"]["num_classes"]
    return found, num_classes


def series(epochs: list[dict], n: int) -> list[float]:
    """Validation top-1 at `n` frames after each epoch."""
    return [e["val"][str(n)]["top1"] for e in epochs if "val" in e]


def plateau_exit(curve: list[float], num_classes: int) -> int | None:
    """First epoch (1-based) whose validation top-1 is a quarter of the way from chance to
    100%: off the plateau for good (a model can sit just above chance for epochs)."""
    chance = 100.0 / num_classes
    return next((i for i, v in enumerate(curve, 1) if v >= chance + (100 - chance) / 4), None)


def mean_curve(curves: list[list[float]]) -> list[float]:
    return [statistics.fmean(vs) for vs in zip(*curves, strict=True)]


def checks(cur: dict, rep: dict) -> list[Claim]:
    """The from-scratch targets, each judged on the mean with the seeds shown."""
    found = []
    if "fan" in cur and "standard-16" in cur:

        def tracked(fan: list[float], std: list[float]) -> float:
            """The worst gap FAN 16F − standard-16 from the first tracked epoch on."""
            pairs = list(zip(fan, std, strict=True))[FIRST_TRACKED_EPOCH - 1 :]
            return min(f - s for f, s in pairs)

        worst = [
            tracked(series(a, 16), series(b, 16))
            for a, b in zip(cur["fan"], cur["standard-16"], strict=True)
        ]
        mean_gap = tracked(
            mean_curve([series(e, 16) for e in cur["fan"]]),
            mean_curve([series(e, 16) for e in cur["standard-16"]]),
        )
        agree = sum(w >= -TRACK_SLACK for w in worst)
        found.append(
            Claim(
                f"FAN 16F ≥ standard-16 − {TRACK_SLACK:g} at every epoch from "
                f"{FIRST_TRACKED_EPOCH} on",
                mean_gap >= -TRACK_SLACK,
                # the mean curves' worst gap, not the mean of each seed's worst gap
                f"worst gap {per_seed(worst, agree, mean_gap)}",
            )
        )
    if "fan" in rep and "st" in rep:
        for n in COUNTS:
            diffs = [
                a["results"][str(n)]["top1"] - b["results"][str(n)]["top1"]
                for a, b in zip(rep["fan"], rep["st"], strict=True)
            ]
            d = statistics.fmean(diffs)
            found.append(
                Claim(
                    f"FAN ≥ ST − {END_SLACK:g} at {n}F after the last epoch",
                    d >= -END_SLACK,
                    per_seed(diffs, sum(x >= -END_SLACK for x in diffs)),
                )
            )
    if "fan" in cur and all(k in cur for k in ST_PARTS):
        fan, st = cost(cur, "fan"), st_cost(cur)
        found.append(
            Claim(
                "FAN's training compute ≤ ST's (frames through the network)",
                fan[1] <= st[1],
                f"FAN {fan[1]:.2f}M frames / {fan[0]:.1f} min, ST "
                f"{st[1]:.2f}M frames / {st[0]:.1f} min",
            )
        )
    return found


def cost(cur: dict, key: str) -> tuple[float, float]:
    """(wall minutes, million frames through the network) of one run, mean over seeds."""
    minutes = statistics.fmean(sum(e["seconds"] for e in s) / 60 for s in cur[key])
    # runs trained before fan-edge counted frames have no record: left out of the mean
    counted = [s for s in cur[key] if all("frames_seen" in e for e in s)]
    frames = (
        statistics.fmean(sum(e["frames_seen"] for e in s) / 1e6 for s in counted)
        if counted
        else float("nan")
    )
    return minutes, frames


def st_cost(cur: dict) -> tuple[float, float]:
    parts = [cost(cur, k) for k in ST_PARTS]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def rows(cur: dict, num_classes: int, labels: dict[str, str]) -> list[str]:
    """Markdown: the mean curve per count and model, its plateau exit per seed, its cost."""
    epochs = len(next(iter(cur.values()))[0])
    lines = [
        "| count | model | "
        + " | ".join(f"ep {i}" for i in range(1, epochs + 1))
        + " | leaves plateau (epoch, per seed) |",
        "|---|---|" + "---|" * (epochs + 1),
    ]
    for n in COUNTS:
        for key in (st_run_name(n), *FANS):
            if key not in cur:
                continue
            curves = [series(e, n) for e in cur[key]]
            exits = ", ".join(str(plateau_exit(c, num_classes) or "never") for c in curves)
            cells = " | ".join(f"{v:.1f}" for v in mean_curve(curves))
            lines.append(f"| {n}F | {labels[key]} | {cells} | {exits} |")
    lines += [
        "",
        "| model | training wall time (min, mean over seeds) | frames through the network (M) |",
        "|---|---|---|",
    ]
    for key in (*FANS, *ST_PARTS):
        if key in cur:
            minutes, frames = cost(cur, key)
            lines.append(f"| {labels[key]} | {minutes:.1f} | {frames:.2f} |")
    if all(k in cur for k in ST_PARTS):
        minutes, frames = st_cost(cur)
        lines.append(f"| ST (the three together) | {minutes:.1f} | {frames:.2f} |")
    return lines


def plot(cur: dict, path: Path, labels: dict[str, str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COUNTS), figsize=(15, 4.2), sharey=True)
    style = {"fan": ("black", "o-"), "fan-paper-recipe": ("tab:red", "^-")}
    for ax, n in zip(axes, COUNTS, strict=True):
        for key in (st_run_name(n), *FANS):
            if key not in cur:
                continue
            curves = [series(e, n) for e in cur[key]]
            xs = range(1, len(curves[0]) + 1)
            color, fmt = style.get(key, ("tab:blue", "s--"))
            ax.plot(xs, mean_curve(curves), fmt, color=color, ms=4, label=labels[key])
            for c in curves:  # every seed, faintly
                ax.plot(xs, c, "-", color=color, alpha=0.2, lw=1)
        ax.set(title=f"validation at {n} frames", xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("top-1 (%)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
