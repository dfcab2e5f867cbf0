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
    python benchmarks/reproduce.py --data train.csv --val val.csv --preset r50 \\
        --init pretrained.pt --out runs/mine --results runs/mine/results   # your data

On your data there is no pretraining step: models start from `--init` (any fan-edge
checkpoint of the same architecture; its classifier is skipped if the classes differ) or
from scratch. The machinery (run folders, seeds in parallel, claims, report) is
`fan_edge.experiments`; this script holds the paper's experiments.
"""

import argparse
import sys
from pathlib import Path

from common import machine

import fan_edge.models  # noqa: F401  (the backbones register their presets)
from fan_edge.config import KD_AFTER, PRESETS, RunConfig, TrainConfig
from fan_edge.errors import FanEdgeError
from fan_edge.experiments import Reports, Sweep, Variant, check_settings, finished, run_sweep
from fan_edge.experiments import report as rp
from fan_edge.experiments.claims import TRAINED, paper_claims
from fan_edge.experiments.sweep import refuse_stopped, training_minutes
from fan_edge.fileio import write_json
from fan_edge.train.api import evaluate_checkpoint, st_run_name, train_run

EVAL_FRAMES = (2, 4, 6, 8, 10, 12, 16, 20)
# Separated Training is one standard model per count, each its own run (named as
# `fan-edge train --mode st` names them): the 16-frame one is also the standard baseline,
# trained once for both, and the learning curves, the normalization shift and the run
# folders of earlier sweeps know them by these names.
ST_PARTS = tuple(st_run_name(n) for n in TRAINED)
RUNS: dict[str, Variant] = {
    **{
        st_run_name(n): Variant(f"ST {n}F", dict(mode="standard", frames=(n,)))
        for n in TRAINED
        if n != 16
    },
    "standard-16": Variant("standard (16F)", dict(mode="standard", frames=(16,))),
    "st": Variant("ST", members=ST_PARTS),
    "ensemble": Variant("Ensemble", members=ST_PARTS, ensemble=True),
    **{
        f"{mode}-{rho}": Variant(
            f"{mode.title()} ρ={rho}", dict(mode=mode, frames=(4, 16), rho=rho)
        )
        for mode in ("mixed", "proportional")
        for rho in (0.5, 0.75)
    },
    "fan": Variant("FAN", dict(mode="fan", frames=(4, 8, 16))),
    "fan2": Variant("FAN(2) 4/16", dict(mode="fan", frames=(4, 16))),
    "fan4": Variant("FAN(4) 4/8/12/16", dict(mode="fan", frames=(4, 8, 12, 16))),
    "fan-no-sn": Variant("FAN w/o Specialized Norm", dict(mode="fan", specialize_norm=False)),
    "fan-no-wa": Variant("FAN w/o Weight Alteration", dict(mode="fan", weight_alteration=False)),
    "fan-ce": Variant("FAN, CE on every sub-network", dict(mode="fan", distill=False)),
    # the from-scratch protocol's recipe ablation: distillation from the first step
    "fan-paper-recipe": Variant(
        "FAN, paper's recipe (distils from step one)",
        dict(mode="fan", kd_gate=0.0, kd_after=0.0, kd_warmup_epochs=0.0),
    ),
    "fan-gate-only": Variant(
        "FAN, the gate alone (no delay: the earlier default)", dict(mode="fan", kd_after=0.0)
    ),
}
LABELS = {k: v.label for k, v in RUNS.items()}
TABLES = {
    "Table 1 analogue: baselines": [
        "standard-16",
        "st",
        "mixed-0.5",
        "mixed-0.75",
        "proportional-0.5",
        "proportional-0.75",
        "ensemble",
        "fan",
    ],
    "FAN(k): the frame set (Figure 8)": ["fan2", "fan", "fan4", "st"],
    "Ablations (Figure 9)": ["fan", "fan-no-sn", "fan-no-wa", "fan-ce", "st"],
    "The from-scratch recipe": ["fan", "fan-gate-only", "fan-paper-recipe", "st"],
}
# Every model starts from one shared checkpoint, as every model of the paper starts from
# ImageNet: a standard 8-frame model trained on 2000 clips that no other run sees (data seed
# 100). Unlike ImageNet it has seen this task. From scratch, FAN's shared weights leave the
# task's initial plateau much later than a single-count model's do (epoch 10-15 against
# 4-6, also after a spatial pretraining on `synthetic-poses`), and the comparison then
# measures the plateau, not the method; see the README.
PRETRAIN = dict(
    data="synthetic", mode="standard", frames=(8,), seed=100, epochs=8, num_videos=2000, lr=0.1
)
# Two protocols (`--protocol`). shared-start: every model starts from the shared checkpoint
# and optimises the paper's loss from the first step. scratch: every model from scratch with
# `fan-edge train`'s defaults, validated after every epoch (learning curves).
PROTOCOLS = {
    "shared-start": dict(
        lr=0.02, pretrain_epochs=PRETRAIN["epochs"], kd_warmup=0.0, kd_gate=0.0, kd_after=0.0
    ),
    "scratch": dict(
        lr=TrainConfig.lr,
        pretrain_epochs=0,
        kd_warmup=TrainConfig.kd_warmup_epochs,
        kd_gate=TrainConfig.kd_gate,
        kd_after=KD_AFTER,  # what `fan-edge train` does from scratch
    ),
}
SCRATCH_RUNS = [*ST_PARTS, "st", "fan", "fan-paper-recipe"]
QUICK = dict(
    epochs=2, num_videos=200, num_val=96, seeds=[0, 1], pretrain_epochs=2, pretrain_videos=200
)
# settings.json's keys (older run folders hold them); all but the first and the last two are
# run options, kd_warmup being kd_warmup_epochs
SETTINGS = (
    "protocol",
    *("epochs", "num_videos", "num_val", "batch_size", "lr", "kd_warmup", "kd_gate"),
    "kd_after",
    *("data", "val", "preset", "init"),
    *("pretrain_epochs", "pretrain_videos"),
)


def base_config(args) -> RunConfig:
    """The options every run shares (a bad value is a one-line error naming its flag)."""
    return RunConfig().replace(
        data=args.data,
        val=args.val,
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        kd_lambda=1.0,
        init=args.init,
        num_videos=args.num_videos,
        num_val=args.num_val,
    )


def distillation(args) -> dict:
    """FAN's distillation schedule: the protocol's, unless a variant sets its own."""
    return dict(kd_warmup_epochs=args.kd_warmup, kd_gate=args.kd_gate, kd_after=args.kd_after)


def settings(args, base: RunConfig) -> dict:
    """What settings.json records: the FAN runs' options (checked, in their stored types)."""
    known = vars(args) | base.replace(**distillation(args)).options()
    known["kd_warmup"] = known["kd_warmup_epochs"]
    return {k: known[k] for k in SETTINGS}


def pretrain(args) -> Path | None:
    """The shared starting point: --init, the synthetic pretraining, or None (scratch)."""
    if args.init is not None or args.data != "synthetic" or args.pretrain_epochs == 0:
        return args.init
    folder = args.out / "pretrain"
    cfg = RunConfig().replace(
        **PRETRAIN | dict(epochs=args.pretrain_epochs, num_videos=args.pretrain_videos),
        preset=args.preset,  # the architecture every model then starts from
        kd_lambda=1.0,
        batch_size=args.batch_size,
        num_val=args.num_val,
    )

    def train() -> dict:
        print(f"pretraining the shared starting point ({cfg.train.epochs} epochs)", flush=True)
        refuse_stopped(train_run(cfg, folder, resume="auto"), folder)
        return evaluate_checkpoint(folder / "checkpoint.pt", [8])

    finished(folder, train)
    return folder / "checkpoint.pt"


def make_sweep(args, init: Path | None) -> Sweep:
    return Sweep(
        variants=RUNS,
        out=args.out,
        base=base_config(args).replace(init=init),
        frames=EVAL_FRAMES,
        mode_defaults={"fan": distillation(args)},
        validate=args.protocol == "scratch",
        quiet=args.jobs > 1,
    )


# normalization shift comparisons: name -> (runs, compare one model fed 4F vs 16F)
SHIFTS = {
    "FAN sub-networks (stored)": (["fan"], False),
    "ST models 4F vs 16F (stored)": (["standard-4", "standard-16"], False),
    "standard-16 fed 4F vs 16F (live)": (["standard-16"], True),
}


def write_results(rep: Reports, shifts: dict, args, pretrained: bool, minutes: float) -> str:
    cmd = " ".join(["python benchmarks/reproduce.py", *sys.argv[1:]])
    synthetic = builtin(args.data)
    data = (
        "the synthetic benchmark"
        if args.data == "synthetic"
        else f"the built-in task `{args.data}`"
        if synthetic
        else f"`{args.data}`"
    )
    clips = (
        f"{args.num_videos} training / {args.num_val} validation clips"
        if synthetic
        else f"validation on `{args.val}`"
    )
    if pretrained:
        start = (
            "every model starting from one checkpoint (a standard 8-frame model, "
            f"{args.pretrain_epochs} epochs on {args.pretrain_videos} other clips; the "
            "stand-in for the paper's ImageNet start)"
        )
    elif args.init is None:
        start = "every model from scratch"
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
        f"(cosine), {start}. Mutual Distillation with lambda 1, "
        f"{rp.distillation_schedule(args.kd_gate, args.kd_warmup, args.kd_after)}. "
        "Top-1 % on the validation clips, mean ± spread "
        "(population std) over seeds. Each count is served by the nearest trained "
        "sub-network (ST: the nearest model).",
        "",
    ]
    claims = paper_claims(rep, LABELS)
    lines += rp.sections(rep, TABLES, LABELS, EVAL_FRAMES, claims, args.results)
    if args.protocol == "scratch":
        title = f"{args.data}, from scratch, seeds {args.seeds}: mean (bold) and each seed (faint)"
        lines += rp.curves_section(rep, args.out, args.seeds, LABELS, title, args.results)
    lines += rp.bn_shift_section(shifts, args.seeds[0])
    if st := shifts.get("ST models 4F vs 16F (stored)"):
        from fan_edge.analysis.bn_shift import plot_bn_shift

        plot_bn_shift(st, args.results / "bn_shift.png")
        lines += ["![normalization shift, ST 4F vs 16F](bn_shift.png)", ""]
    text = "\n".join(lines)
    rp.write_text(args.results / "RESULTS.md", text)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="run folders (default runs/reproduce)")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="RESULTS.md and plots (default benchmarks/results/reproduce)",
    )
    p.add_argument("--quick", action="store_true", help="tiny smoke run (minutes)")
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="shared-start",
        help="shared-start: every model from one pretrained checkpoint, the paper's "
        "loss from step one;\nscratch: every model from scratch with `fan-edge "
        "train`'s defaults, learning curves",
    )
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
    p.add_argument(
        "--jobs", type=int, default=1, help="seeds trained side by side, each on cores/jobs threads"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--num-videos", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, help="peak lr (SGD, cosine; default per protocol)")
    p.add_argument("--kd-warmup", type=float, help="FAN: epochs from CE to KL (per protocol)")
    p.add_argument(
        "--kd-gate",
        type=float,
        help="FAN: students distil once the teacher is this far from chance to 100%% "
        "(per protocol; 0: from the first step)",
    )
    p.add_argument(
        "--kd-after",
        type=float,
        help="FAN: students learn from the labels for this fraction of the run first "
        "(per protocol; 0: no delay)",
    )
    p.add_argument(
        "--pretrain-epochs",
        type=int,
        help="0: train every model from scratch (default per protocol)",
    )
    p.add_argument("--pretrain-videos", type=int, default=PRETRAIN["num_videos"])
    p.add_argument("--only", nargs="+", choices=list(RUNS), help="train / evaluate just these")
    args = p.parse_args(argv)
    # the protocol's and --quick's defaults; flags given on the command line still win
    p.set_defaults(**PROTOCOLS[args.protocol] | (QUICK if args.quick else {}))
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if len(set(args.seeds)) < len(args.seeds):
        p.error(f"--seeds {' '.join(map(str, args.seeds))} repeats a seed: give each once")
    if not builtin(args.data) and args.val is None:
        p.error("--val is needed with your own --data (a built-in set makes its own)")
    own = [args.init] + ([] if builtin(args.data) else [Path(args.data), Path(args.val)])
    for path in own:  # before settings.json records them for the run folder
        if path is not None and not path.is_file():
            p.error(f"no such file: {path}")
    name = (
        "reproduce"
        + ("-scratch" if args.protocol == "scratch" else "")
        + (args.data.removeprefix("synthetic") if builtin(args.data) else "")
    )
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
    except FanEdgeError as e:  # bad settings, data or checkpoint: one line
        raise SystemExit(f"error: {e}") from None


def reproduce(args: argparse.Namespace) -> None:
    base = base_config(args)  # checks every option before settings.json records them
    args.results.mkdir(parents=True, exist_ok=True)
    check_settings(args.out, settings(args, base))
    init = pretrain(args)
    pretrained = init is not None and init != args.init  # this script's own starting point
    sweep = make_sweep(args, init)
    keys = args.only or (
        SCRATCH_RUNS if args.protocol == "scratch" else [k for k in RUNS if k != "fan-paper-recipe"]
    )
    rep = run_sweep(sweep, args.seeds, keys, jobs=args.jobs)
    folders = [sweep.folder(k, s) for k in rep for s in args.seeds]
    minutes = training_minutes(folders + ([args.out / "pretrain"] if pretrained else []))
    shifts = rp.bn_shifts(lambda k: sweep.folder(k, args.seeds[0]), SHIFTS, rep)
    write_json(
        args.results / "results.json",
        {
            "args": {k: str(v) for k, v in vars(args).items()} | {"init": str(init)},
            "top1": {k: [r["results"] for r in v] for k, v in rep.items()},
        },
    )
    print(write_results(rep, shifts, args, pretrained, minutes))
    print(f"wrote {args.results / 'RESULTS.md'}")


if __name__ == "__main__":
    sys.exit(main())
