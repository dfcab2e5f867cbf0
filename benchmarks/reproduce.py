"""Reproduce the paper's comparisons on the synthetic benchmark (or your data), in one
resumable command.

Trains, per seed, every model of three experiments on the same data and budget:
- Table 1 analogue: the standard model (16 frames), Separated Training (one standard model
  per count), Mixed and Proportional Sampling (rho 0.5 / 0.75), the Ensemble of the ST
  models, and FAN;
- FAN(k) (Figure 8): FAN(2) = (4, 16), FAN(3) = (4, 8, 16), FAN(4) = (4, 8, 12, 16);
- ablations (Figure 9): FAN without Specialized Normalization, without Weight Alteration,
  and with cross-entropy on every sub-network instead of Mutual Distillation;
evaluates each at 2..20 frames, measures the normalization shift, and writes RESULTS.md and
plots (mean and spread over seeds). Finished runs are skipped, so an interrupted run
continues where it stopped.

    python benchmarks/reproduce.py            # the full run, about 2 hours on 2 CPU cores
    python benchmarks/reproduce.py --jobs 2   # the two seeds side by side, about 1 hour
    python benchmarks/reproduce.py --quick    # a smoke run, a few minutes
    python benchmarks/reproduce.py --data train.csv --val val.csv --preset r50 \
        --init pretrained.pt --out runs/mine --results runs/mine/results   # your data

On your data there is no pretraining step: models start from `--init` (any fan-edge
checkpoint of the same architecture; its classifier is skipped if the classes differ) or
from scratch.
"""

import argparse
import fcntl
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import curves
import torch
from common import machine, read_json

import fan_edge.models  # noqa: E402, F401  (the backbones register their presets)
from fan_edge.config import PRESETS, TrainConfig
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_path, write_json
from fan_edge.train.api import evaluate_checkpoint, train_from_options

EVAL_FRAMES = [2, 4, 6, 8, 10, 12, 16, 20]
TRAINED = (4, 8, 16)


@dataclass(frozen=True)
class Run:
    """One trained model (options for `train_from_options`) or one evaluation of others."""

    label: str
    options: dict = field(default_factory=dict)
    members: tuple[str, ...] = ()  # evaluation only: the runs whose checkpoints it combines
    ensemble: bool = False


def st(n: int) -> Run:
    return Run(f"ST {n}F", dict(mode="standard", frames=[n]))


RUNS: dict[str, Run] = {
    "standard-4": st(4),
    "standard-8": st(8),
    "standard-16": Run("standard (16F)", dict(mode="standard", frames=[16])),
    "st": Run("ST", members=("standard-4", "standard-8", "standard-16")),
    "ensemble": Run(
        "Ensemble", members=("standard-4", "standard-8", "standard-16"), ensemble=True
    ),  # fmt: skip
    "mixed-0.5": Run("Mixed ρ=0.5", dict(mode="mixed", frames=[4, 16], rho=0.5)),
    "mixed-0.75": Run("Mixed ρ=0.75", dict(mode="mixed", frames=[4, 16], rho=0.75)),
    "proportional-0.5": Run(
        "Proportional ρ=0.5", dict(mode="proportional", frames=[4, 16], rho=0.5)
    ),  # fmt: skip
    "proportional-0.75": Run(
        "Proportional ρ=0.75", dict(mode="proportional", frames=[4, 16], rho=0.75)
    ),  # fmt: skip
    "fan": Run("FAN", dict(mode="fan", frames=[4, 8, 16])),
    "fan2": Run("FAN(2) 4/16", dict(mode="fan", frames=[4, 16])),
    "fan4": Run("FAN(4) 4/8/12/16", dict(mode="fan", frames=[4, 8, 12, 16])),
    "fan-no-sn": Run("FAN w/o Specialized Norm", dict(mode="fan", specialize_norm=False)),
    "fan-no-wa": Run("FAN w/o Weight Alteration", dict(mode="fan", weight_alteration=False)),
    "fan-ce": Run("FAN, CE on every sub-network", dict(mode="fan", distill=False)),
    # the from-scratch protocol's recipe ablation: distillation from the first step
    "fan-paper-recipe": Run("FAN, paper's recipe (distils from step one)",
                            dict(mode="fan", kd_gate=0.0, kd_warmup_epochs=0.0)),
}
TABLES = {
    "Table 1 analogue: baselines": ["standard-16", "st", "mixed-0.5", "mixed-0.75",
                                    "proportional-0.5", "proportional-0.75", "ensemble", "fan"],
    "FAN(k): the frame set (Figure 8)": ["fan2", "fan", "fan4", "st"],
    "Ablations (Figure 9)": ["fan", "fan-no-sn", "fan-no-wa", "fan-ce", "st"],
    "The from-scratch recipe": ["fan", "fan-paper-recipe", "st"],
}  # fmt: skip
# Every model starts from one shared checkpoint, as every model of the paper starts from
# ImageNet: a standard 8-frame model trained on 2000 clips that no other run sees (data seed
# 100). Unlike ImageNet it has seen this task. From scratch, FAN's shared weights leave the
# task's initial plateau much later than a single-count model's do (epoch 10-15 against
# 4-6, also after a spatial pretraining on `synthetic-poses`), and the comparison then
# measures the plateau, not the method; see the README.
PRETRAIN = dict(data="synthetic", mode="standard", frames=[8], seed=100, epochs=8,
                num_videos=2000, lr=0.1)  # fmt: skip
# Two protocols (`--protocol`). shared-start: every model starts from the shared checkpoint
# and optimises the paper's loss from the first step. scratch: every model from scratch with
# `fan-edge train`'s defaults, validated after every epoch (learning curves).
PROTOCOLS = {
    "shared-start": dict(lr=0.02, pretrain_epochs=PRETRAIN["epochs"], kd_warmup=0.0, kd_gate=0.0),
    "scratch": dict(lr=TrainConfig.lr, pretrain_epochs=0, kd_warmup=TrainConfig.kd_warmup_epochs,
                    kd_gate=TrainConfig.kd_gate),
}
SCRATCH_RUNS = ["standard-4", "standard-8", "standard-16", "st", "fan", "fan-paper-recipe"]
QUICK = dict(
    epochs=2, num_videos=200, num_val=96, seeds=[0, 1], pretrain_epochs=2, pretrain_videos=200
)


@contextmanager
def claimed(folder: Path):
    """Hold a run folder while training it: another process (a second invocation on the same
    --out) waits for it, then finds the run finished instead of training it again."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is training {folder}", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def finished(folder: Path, make: Callable[[], dict]) -> dict:
    """`folder`/eval.json, made by `make()` unless this or another process already made it;
    read back from the file either way (string keys, as a resumed run sees it)."""
    path = folder / "eval.json"
    if not path.exists():
        with claimed(folder):
            if not path.exists():  # another process may have made it while this one waited
                write_json(path, make())
    return read_json(path)


def pretrain(args) -> Path | None:
    """The shared starting point: --init, the synthetic pretraining, or None (scratch)."""
    if args.init is not None or args.data != "synthetic" or args.pretrain_epochs == 0:
        return args.init
    folder = args.out / "pretrain"
    opts = PRETRAIN | {"epochs": args.pretrain_epochs, "num_videos": args.pretrain_videos}

    def train() -> dict:
        print(f"pretraining the shared starting point ({opts['epochs']} epochs)", flush=True)
        train_from_options(out=folder, val=None, preset="tiny", kd_lambda=1.0,
                           batch_size=args.batch_size, num_val=args.num_val, resume="auto",
                           **opts)  # fmt: skip
        return evaluate_checkpoint(folder / "checkpoint.pt", [8])

    finished(folder, train)
    return folder / "checkpoint.pt"


def train_and_eval(key: str, seed: int, args) -> dict:
    folder = args.out / f"{key}_seed{seed}"
    run = RUNS[key]

    def train() -> dict:
        if run.members:  # an evaluation of other runs' checkpoints
            ckpts = [args.out / f"{m}_seed{seed}" / "checkpoint.pt" for m in run.members]
            return evaluate_checkpoint(ckpts, EVAL_FRAMES, ensemble=run.ensemble)
        options = dict(mode="fan", frames=None) | run.options
        if options["mode"] == "fan":  # students exist only in a FAN
            options.setdefault("kd_warmup_epochs", args.kd_warmup)
            options.setdefault("kd_gate", args.kd_gate)
        train_from_options(
            out=folder, data=args.data, val=args.val, preset=args.preset, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, kd_lambda=1.0, init=args.init, seed=seed,
            num_videos=args.num_videos, num_val=args.num_val, resume="auto",
            validate=args.protocol == "scratch", quiet=args.jobs > 1, **options,
        )  # fmt: skip
        return evaluate_checkpoint(folder / "checkpoint.pt", EVAL_FRAMES)

    return finished(folder, train)


def run_seed(args, seed: int, keys: list[str], rep: dict | None = None) -> None:
    """Train and evaluate one seed's runs (those not finished yet), adding reports to `rep`."""
    t0 = time.time()
    for i, key in enumerate(keys, 1):
        new = not (args.out / f"{key}_seed{seed}" / "eval.json").exists()
        tag = f"[seed {seed}: {i}/{len(keys)}] {RUNS[key].label}"
        if new:
            print(f"{tag} ({(time.time() - t0) / 60:.0f} min so far)", flush=True)
        report = train_and_eval(key, seed, args)
        if new:
            top = ", ".join(f"{n}F {report['results'][str(n)]['top1']:.1f}" for n in TRAINED)
            print(f"{tag}: top-1 {top}", flush=True)
        if rep is not None:
            rep.setdefault(key, []).append(report)


def seed_worker(job: tuple) -> tuple[int, str | None]:
    """`run_seed` in a worker process with its share of the cores; a one-line error (a
    SystemExit, which would kill a pool worker silently) comes back as a message."""
    args, seed, keys, threads = job
    torch.set_num_threads(threads)
    try:
        run_seed(args, seed, keys)
    except SystemExit as e:
        return seed, str(e)
    return seed, None


def run_seeds_in_parallel(args, keys: list[str]) -> None:
    """One process per seed, `--jobs` at a time; the first failure stops them all."""
    jobs = min(args.jobs, len(args.seeds))
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)
    spawn = multiprocessing.get_context("spawn")  # forking a process that holds torch can hang
    with spawn.Pool(jobs) as pool:  # leaving the block terminates the workers
        work = [(args, s, keys, threads) for s in args.seeds]
        for seed, error in pool.imap_unordered(seed_worker, work):
            if error:
                raise SystemExit(error)
            print(f"seed {seed}: every run finished", flush=True)


def bn_shift(args, seed: int, keys: list[str]) -> dict:
    """Normalization shift: FAN's private norms, ST 4F vs 16F, and standard-16 fed 4 vs 16
    (those whose runs are among `keys`)."""
    from fan_edge.analysis.bn_shift import bn_shift_report, plot_bn_shift

    wanted = {
        "FAN sub-networks (stored)": (["fan"], False),
        "ST models 4F vs 16F (stored)": (["standard-4", "standard-16"], False),
        "standard-16 fed 4F vs 16F (live)": (["standard-16"], True),
    }
    reports = {name: bn_shift_report([args.out / f"{k}_seed{seed}" / "checkpoint.pt" for k in runs],
                                     live=live)
               for name, (runs, live) in wanted.items() if set(runs) <= set(keys)}  # fmt: skip
    if st := reports.get("ST models 4F vs 16F (stored)"):
        plot_bn_shift(st, args.results / "bn_shift.png")
    return reports


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def cell(values: list[float]) -> str:
    m, s = stats(values)
    return f"{m:.1f} ± {s:.1f}" if len(values) > 1 else f"{m:.1f}"


def top1(reports: dict, key: str, n: int) -> list[float]:
    return [r["results"][str(n)]["top1"] for r in reports[key]]


def mean_at(reports, key, n) -> float:
    return stats(top1(reports, key, n))[0]


def seed_diffs(rep: dict, key: str, base: str, counts) -> list[float]:
    """Per seed, `key` minus `base` averaged over `counts` (both trained with that seed)."""
    return [statistics.fmean(a["results"][str(n)]["top1"] - b["results"][str(n)]["top1"]
                             for n in counts)
            for a, b in zip(rep[key], rep[base], strict=True)]  # fmt: skip


def diff_check(claim: str, diffs: list[float], want_negative: bool) -> tuple[str, bool, str]:
    """Holds when the mean difference has the claimed sign; the seeds show how firmly."""
    d = statistics.fmean(diffs)
    agree = sum((x < 0) if want_negative else (x >= 0) for x in diffs)
    per_seed = ", ".join(f"{x:+.1f}" for x in diffs)
    return (claim, d < 0 if want_negative else d >= 0,
            f"{d:+.1f} (per seed {per_seed}: {agree} of {len(diffs)} agree)")  # fmt: skip


def shape_checks(rep: dict) -> list[tuple[str, bool, str]]:
    """The paper's qualitative claims that the runs in `rep` can test, each judged on the
    measured means; paired claims also show the difference seed by seed."""

    def m(key, n):
        return mean_at(rep, key, n)

    def have(*keys):
        return all(k in rep for k in keys)

    checks = []
    if have("st", "standard-16"):
        td = m("st", 4) - m("standard-16", 4)
        checks.append(("Temporal Deviation: the standard model loses at 4F against ST", td > 3,
                       f"ST 4F − standard 4F = {td:+.1f}"))  # fmt: skip
    for k in ("mixed-0.5", "mixed-0.75", "proportional-0.5", "proportional-0.75"):
        if have(k, "standard-16"):
            low, high = m(k, 4) - m("standard-16", 4), m(k, 16) - m("standard-16", 16)
            claim = f"{RUNS[k].label} trades 16F accuracy for 4F accuracy"
            detail = f"vs standard: 4F {low:+.1f}, 16F {high:+.1f}"
            checks.append((claim, low > 0 and high < 0, detail))
    if have("fan", "st"):
        for n in TRAINED:
            checks.append(diff_check(f"FAN ≥ ST at {n}F", seed_diffs(rep, "fan", "st", [n]), False))
    for k in ("fan-no-sn", "fan-no-wa", "fan-ce"):
        if have(k, "fan"):
            checks.append(diff_check(f"{RUNS[k].label} below full FAN on average (4/8/16F)",
                                     seed_diffs(rep, k, "fan", TRAINED), True))  # fmt: skip
    if have("fan2", "fan"):
        checks.append(diff_check("FAN(2) below FAN(3) between its two counts (6-12F)",
                                 seed_diffs(rep, "fan2", "fan", [6, 8, 10, 12]), True))  # fmt: skip
    return checks


def tables(rep: dict) -> dict[str, list[str]]:
    """TABLES restricted to the runs in `rep` (all of them after a full run), leaving out a
    table that would only repeat runs shown above it."""
    found, shown = {}, set()
    for title, keys in TABLES.items():
        keys = [k for k in keys if k in rep]
        if set(keys) - shown:
            found[title] = keys
            shown.update(keys)
    return found


def plot(rep: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = tables(rep)
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.3 * len(panels) + 0.1, 4.5),
                             sharey=True, squeeze=False)  # fmt: skip
    axes = axes[0]
    plotted = list(dict.fromkeys(k for keys in TABLES.values() for k in keys if k != "fan"))
    palette = [*plt.cm.tab10.colors, "#1b9e77", "#e7298a", "#7570b3"]  # + Dark2 minus orange
    color = dict(zip(plotted, palette, strict=False)) | {"fan": "black"}  # same in every panel
    for ax, (title, keys) in zip(axes, panels.items(), strict=True):
        for key in keys:
            means = [mean_at(rep, key, n) for n in EVAL_FRAMES]
            errs = [stats(top1(rep, key, n))[1] for n in EVAL_FRAMES]
            style = "o-" if key.startswith("fan") else "s--"
            ax.errorbar(EVAL_FRAMES, means, yerr=errs, fmt=style, ms=4, capsize=2,
                        color=color[key], label=RUNS[key].label)  # fmt: skip
        ax.set(title=title, xlabel="frames at evaluation", xticks=EVAL_FRAMES)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("top-1 (%)")
    fig.tight_layout()
    with atomic_path(args.results / "reproduce.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def distil_start(args) -> str:
    when = []
    if args.kd_gate:
        when.append("once the teacher's running training top-1 is "
                    f"{args.kd_gate:g} of the way from chance to 100%")  # fmt: skip
    if args.kd_warmup:
        when.append(f"over the first {args.kd_warmup:g} epochs")
    if not when:
        return "distilling from the first step (the paper's recipe)"
    return "students moving from cross-entropy to distillation " + " and ".join(when)


def write_results(rep: dict, shifts: dict, args, minutes: float) -> str:
    cmd = " ".join(["python benchmarks/reproduce.py", *sys.argv[1:]])
    synthetic = builtin(args.data)
    data = ("the synthetic benchmark" if args.data == "synthetic" else
            f"the built-in task `{args.data}`" if synthetic else f"`{args.data}`")  # fmt: skip
    clips = (f"{args.num_videos} training / {args.num_val} validation clips" if synthetic
             else f"validation on `{args.val}`")  # fmt: skip
    pretrained = args.init == args.out / "pretrain" / "checkpoint.pt"  # this script's own
    if args.init is None:
        start = "every model from scratch"
    elif pretrained:
        start = ("every model starting from one checkpoint (a standard 8-frame model, "
                 f"{args.pretrain_epochs} epochs on {args.pretrain_videos} other clips; the "
                 "stand-in for the paper's ImageNet start)")  # fmt: skip
    else:
        start = f"every model starting from `{args.init}`"
    lines = [
        f"# Reproducing the paper's comparisons on {data}",
        "",
        f"Made by `{cmd}` on {machine()}; the training epochs of these runs add up to "
        f"{minutes:.0f} min ({'the shared pretraining included, ' if pretrained else ''}"
        "evaluation not; runs trained side by side, as with `--jobs`, each count their own "
        "time).",
        f"Preset `{args.preset}`, {args.epochs} epochs, {clips}, seeds {args.seeds}, "
        f"SGD lr {args.lr} "
        f"(cosine), {start}. Mutual Distillation with lambda 1, {distil_start(args)}. "
        "Top-1 % on the validation clips, mean ± spread "
        "(population std) over seeds. Each count is served by the nearest trained "
        "sub-network (ST: the nearest model).",
        "",
    ]
    for title, keys in tables(rep).items():
        lines += [f"## {title}", "", "| model | " + " | ".join(f"{n}F" for n in EVAL_FRAMES)
                  + " |", "|---|" + "---|" * len(EVAL_FRAMES)]  # fmt: skip
        for key in keys:
            cells = " | ".join(cell(top1(rep, key, n)) for n in EVAL_FRAMES)
            lines.append(f"| {RUNS[key].label} | {cells} |")
        lines.append("")
    if checks := shape_checks(rep):
        lines += ["## The paper's claims, checked", "", "| claim | holds | measured |",
                  "|---|---|---|"]  # fmt: skip
        lines += [f"| {c} | {'yes' if ok else '**no**'} | {detail} |" for c, ok, detail in checks]
        lines.append("")
    if tables(rep):
        lines += ["![accuracy per frame count](reproduce.png)", ""]
    if args.protocol == "scratch":
        lines += scratch_section(rep, args)
    if shifts:
        lines += [f"## Normalization shift (seed {args.seeds[0]})", "",
                  "Symmetric KL between per-channel Gaussians of normalization statistics, mean "
                  "over layers, and by quarter of the depth (input → output); see "
                  "`fan-edge analyze bn-shift`.", "",
                  "| comparison | mean | by depth quarter |", "|---|---|---|"]  # fmt: skip
        for name, r in shifts.items():
            for c in r["comparisons"]:
                s = c["summary"]
                q = " / ".join(f"{v:.3f}" for v in s["sym_kl_by_depth_quarter"])
                lines.append(f"| {name}: {c['a']} vs {c['b']} | {s['mean_sym_kl']:.3f} | {q} |")
        lines.append("")
    if "ST models 4F vs 16F (stored)" in shifts:
        lines += ["![normalization shift, ST 4F vs 16F](bn_shift.png)", ""]
    text = "\n".join(lines)
    with atomic_path(args.results / "RESULTS.md") as tmp:
        tmp.write_text(text)
    return text


def scratch_section(rep: dict, args) -> list[str]:
    """Learning curves, plateau exits, training cost and the from-scratch targets."""
    cur, num_classes = curves.load(args.out, list(RUNS), args.seeds)
    if not cur:
        return []
    labels = {k: RUNS[k].label for k in RUNS}
    title = f"{args.data}, from scratch, seeds {args.seeds}: mean (bold) and each seed (faint)"
    curves.plot(cur, args.results / "curves.png", labels, title)
    lines = ["## Learning curves from scratch", "",
             "Validation top-1 (%) after each epoch, mean over seeds, at each trained count: "
             "FAN's sub-network against the single-count model trained at that count (ST's "
             "model there). A model leaves the plateau at the first epoch whose top-1 is a "
             f"quarter of the way from chance ({100 / num_classes:.1f}%) to 100%.", "",
             *curves.rows(cur, num_classes, labels), "",
             "![learning curves](curves.png)", ""]  # fmt: skip
    if found := curves.checks(cur, rep):
        lines += ["## From-scratch targets", "", "| target | holds | measured |", "|---|---|---|"]
        lines += [f"| {c} | {'yes' if ok else '**no**'} | {detail} |" for c, ok, detail in found]
        lines.append("")
    return lines


SETTINGS = ("protocol", "epochs", "num_videos", "num_val", "batch_size", "lr", "kd_warmup",
            "kd_gate", "pretrain_epochs", "pretrain_videos", "data", "val", "preset",
            "init")  # fmt: skip


def check_settings(args) -> None:
    """A run folder holds one configuration: resuming it with other settings would mix them."""
    path = args.out / "settings.json"
    mine = {k: str(v) if isinstance(v := getattr(args, k), Path) else v for k in SETTINGS}
    if path.exists():
        theirs = read_json(path)
        diff = ", ".join(f"{k} {theirs[k]} -> {v}" for k, v in mine.items()
                         if k in theirs and theirs[k] != v)  # fmt: skip
        if diff:
            raise SystemExit(f"error: {args.out} holds runs made with other settings ({diff}): "
                             "pass another --out")  # fmt: skip
    else:
        write_json(path, mine)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="run folders (default runs/reproduce)")
    p.add_argument("--results", type=Path, default=None,
                   help="RESULTS.md and plots (default benchmarks/results/reproduce)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny smoke run (minutes)")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="shared-start",
                   help="shared-start: every model from one pretrained checkpoint, the paper's "
                   "loss from step one;\nscratch: every model from scratch with `fan-edge "
                   "train`'s defaults, learning curves")  # fmt: skip
    p.add_argument(
        "--data",
        default="synthetic",
        help="training data: 'synthetic', 'synthetic-pairs' (a second built-in task), a "
        "videos .csv or a frame list (as `fan-edge train --data`)",
    )
    p.add_argument("--val", default=None, help="validation data (needed unless built in)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start every model from this checkpoint (skips the pretraining)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--jobs", type=int, default=1,
                   help="seeds trained side by side, each on cores/jobs threads")  # fmt: skip
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--num-videos", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, help="peak lr (SGD, cosine; default per protocol)")
    p.add_argument("--kd-warmup", type=float, help="FAN: epochs from CE to KL (per protocol)")
    p.add_argument("--kd-gate", type=float,
                   help="FAN: students distil once the teacher is this far from chance to 100%% "
                   "(per protocol; 0: from the first step)")  # fmt: skip
    p.add_argument("--pretrain-epochs", type=int,
                   help="0: train every model from scratch (default per protocol)")  # fmt: skip
    p.add_argument("--pretrain-videos", type=int, default=PRETRAIN["num_videos"])
    p.add_argument("--only", nargs="+", choices=list(RUNS), help="train / evaluate just these")
    args = p.parse_args(argv)
    # the protocol's and --quick's defaults; flags given on the command line still win
    p.set_defaults(**PROTOCOLS[args.protocol] | (QUICK if args.quick else {}))
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if not 0.0 <= args.kd_gate <= 1.0:  # before settings.json records it
        p.error(f"--kd-gate is a fraction in [0, 1] (0: distil from the first step), got "
                f"{args.kd_gate:g}")  # fmt: skip
    if len(set(args.seeds)) < len(args.seeds):
        p.error(f"--seeds {' '.join(map(str, args.seeds))} repeats a seed: give each once")
    if not builtin(args.data) and args.val is None:
        p.error("--val is needed with your own --data (a built-in set makes its own)")
    own = [args.init] + ([] if builtin(args.data) else [Path(args.data), Path(args.val)])
    for path in own:  # before settings.json records them for the run folder
        if path is not None and not path.is_file():
            p.error(f"no such file: {path}")
    name = "reproduce" + ("-scratch" if args.protocol == "scratch" else "") + (
        args.data.removeprefix("synthetic") if builtin(args.data) else "")  # fmt: skip
    args.out = args.out or Path(f"runs/{name}{'-quick' if args.quick else ''}")
    if args.results is None:  # a partial run or your data never replaces published results
        own_data = not builtin(args.data)
        partial = "results-only" if args.only else "results" if args.quick or own_data else None
        args.results = args.out / partial if partial else Path(f"benchmarks/results/{name}")
    return args


def builtin(data: str) -> bool:
    """A built-in synthetic task (it makes its own validation clips)."""
    return data.startswith("synthetic")


def main() -> None:
    try:
        reproduce(parse_args())
    except FanEdgeError as e:  # bad data or checkpoint found while training: one line
        raise SystemExit(f"error: {e}") from None


def reproduce(args: argparse.Namespace) -> None:
    args.results.mkdir(parents=True, exist_ok=True)
    check_settings(args)

    args.init = pretrain(args)
    keys = args.only or (SCRATCH_RUNS if args.protocol == "scratch" else
                         [k for k in RUNS if k != "fan-paper-recipe"])  # fmt: skip
    keys = [k for k in RUNS if k in keys or any(k in RUNS[o].members for o in keys)]
    if args.jobs > 1:
        run_seeds_in_parallel(args, keys)
    rep: dict[str, list[dict]] = {}  # per run, one report per seed in args.seeds order
    for seed in args.seeds:  # after --jobs every run is finished: this only reads reports
        run_seed(args, seed, keys, rep)
    metrics = [args.out / f"{k}_seed{s}" / "metrics.json" for k in keys for s in args.seeds]
    if args.init == args.out / "pretrain" / "checkpoint.pt":
        metrics.append(args.out / "pretrain" / "metrics.json")
    minutes = sum(e["seconds"] for path in metrics if path.exists()
                  for e in read_json(path)["epochs"]) / 60  # fmt: skip
    shifts = bn_shift(args, args.seeds[0], keys)
    plot(rep, args)
    write_json(args.results / "results.json", {"args": {k: str(v) for k, v in vars(args).items()},
               "top1": {k: [r["results"] for r in v] for k, v in rep.items()}})  # fmt: skip
    print(write_results(rep, shifts, args, minutes))
    print(f"wrote {args.results / 'RESULTS.md'}")


if __name__ == "__main__":
    sys.exit(main())
