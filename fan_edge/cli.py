"""The `fan-edge` command: a thin shell over the library; each command calls one function.

User mistakes surface as `FanEdgeError`: one line on stderr, exit code 1, no traceback.
Heavy imports (torch, onnx) happen inside the commands that need them, so `fan-edge run`
works on a device without PyTorch.
"""

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from exporters import targets_help
from fan_edge.config import MAX_CLASSES, MAX_CLIPS, MAX_WORKERS, OPTION_SECTION, RunConfig
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import check_output_path
from fan_edge.frames import MAX_FRAMES
from fan_edge.runtime.backends import AUTO, backends_help

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Frame Adaptive Networks: train once, run at any frame count on the edge.",
)
console = Console()

MAX_BATCH = 4096  # clips in one batch: more is a typo that exhausts memory

# Options that take several values after one flag (`--frames 4 8 16`). Typer wants the flag
# repeated, so `main` rewrites the first form into the second before parsing, for the
# commands where the option is a list (in `run`, `--frames` is one number).
MULTI_VALUE_OPTIONS = {"--frames"}
LIST_COMMANDS = {"train", "eval", "flops", "export", "analyze"}


def expand_multi_value_options(argv: list[str]) -> list[str]:
    """Rewrite `--frames 4 8 16` as `--frames 4 --frames 8 --frames 16` (integers only)."""
    if not argv or argv[0] not in LIST_COMMANDS:
        return list(argv)
    out: list[str] = []
    flag, got = None, False
    for arg in argv:
        if arg in MULTI_VALUE_OPTIONS:
            if flag and not got:
                out.append(flag)
            flag, got = arg, False
        elif flag and arg.lstrip("-").isdigit():
            out += [flag, arg]
            got = True
        else:
            if flag and not got:
                out.append(flag)  # a flag with no value: typer reports it
            flag = None
            out.append(arg)
    if flag and not got:
        out.append(flag)
    return out


PRESET_HELP = (
    "Model preset: tiny, r18, r50, or one a registered backbone adds "
    "(fan_edge.models.register_backbone)."
)


# Ranges of numeric options: typer refuses a value outside one as a usage error (exit code 2).
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
# Frame sizes (synth) and input sizes (flops), in pixels: below 16 a clip shows nothing; above
# 1024 one synthetic clip or one counting pass takes gigabytes.
MIN_SIZE, MAX_SIZE = 16, 1024

FramesOpt = Annotated[
    list[int] | None,
    typer.Option("--frames", help="Frame counts, e.g. --frames 4 8 16.", show_default=False),
]


def _table(title: str, columns: list[str], rows: list[list]) -> Table:
    t = Table(title=title)
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    for i, c in enumerate(columns):
        numeric = all(_is_number(r[i].rstrip("MB% ")) for r in cells)
        t.add_column(c, justify="right" if numeric else "left")
    for r in cells:
        t.add_row(*r)
    return t


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


DEFAULT = RunConfig()  # every training option's default, in one place
M, T, D = DEFAULT.model, DEFAULT.train, DEFAULT.data


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoint.pt, metrics.json.")] = Path(
        "runs/train"
    ),
    data: Annotated[
        str,
        typer.Option(
            help="'synthetic', 'synthetic-poses' (a spatial pretraining task), a videos .csv, or a "
            "frame list."
        ),
    ] = D.data,
    val: Annotated[str | None, typer.Option(help="Validation data (same forms).")] = D.val,
    mode: Annotated[
        str,
        typer.Option(
            help="fan: K sub-networks; standard: one count; st: one standard model per count; "
            "mixed / proportional: the paper's baselines over a low and a high count."
        ),
    ] = T.mode,
    preset: Annotated[str, typer.Option(help=PRESET_HELP)] = M.preset,
    frames: FramesOpt = None,
    epochs: Annotated[int, typer.Option(help="Epochs.", min=1, max=100_000)] = T.epochs,
    batch_size: Annotated[
        int, typer.Option(help="Clips per step (per process).", min=1, max=MAX_BATCH)
    ] = T.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate (SGD, cosine).")] = T.lr,
    kd_lambda: Annotated[float, typer.Option("--lambda", help="Mutual Distillation weight.")] = (
        T.kd_lambda
    ),
    kd_gate: Annotated[
        float,
        typer.Option(
            help="Students learn from the labels until the teacher's running training top-1 is "
            "this far from chance to 100%, then distil (0: from the first step, the paper's "
            "recipe).",
            min=0.0,
            max=1.0,
        ),
    ] = T.kd_gate,
    kd_warmup_epochs: Annotated[
        float,
        typer.Option(
            "--kd-warmup",
            help="Also ramp students from cross-entropy to distillation over E epochs.",
        ),
    ] = T.kd_warmup_epochs,
    distill: Annotated[
        bool,
        typer.Option(
            help="fan: Mutual Distillation; --no-distill: cross-entropy on every sub-network."
        ),
    ] = (T.distill),
    rho: Annotated[
        float,
        typer.Option(help="mixed / proportional: probability of the mixed / high-count clip."),
    ] = T.rho,
    seed: Annotated[
        int, typer.Option(help="Seed for weights, sampling, synthetic data.", min=0, max=MAX_SEED)
    ] = T.seed,
    num_videos: Annotated[
        int, typer.Option(help="Synthetic training videos.", min=1, max=MAX_CLIPS)
    ] = D.num_videos,
    num_val: Annotated[
        int, typer.Option(help="Synthetic validation videos.", min=1, max=MAX_CLIPS)
    ] = D.num_val,
    specialize_norm: Annotated[bool, typer.Option(help="Private norms per sub-network.")] = (
        M.specialize_norm
    ),
    weight_alteration: Annotated[bool, typer.Option(help="Weight Alteration.")] = (
        M.weight_alteration
    ),
    init: Annotated[
        str | None,
        typer.Option(
            help="Start from this checkpoint's weights (e.g. a pretrained standard model)."
        ),
    ] = T.init,
    workers: Annotated[
        int, typer.Option(help="DataLoader worker processes.", min=0, max=MAX_WORKERS)
    ] = T.workers,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in --out exactly where it stopped (same options and data)."
        ),
    ] = (False),
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run in --out (its checkpoint.pt and metrics.json).")
    ] = False,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after N steps (smoke runs).", min=1)
    ] = None,
) -> None:
    """Train one FAN checkpoint (or a baseline: standard, st, mixed, proportional)."""
    from fan_edge.train.api import train_run

    # Every parameter named like a RunConfig field is that option: a new option is a field
    # (fan_edge/config.py) and its flag here, nothing else.
    options = {k: v for k, v in locals().items() if k in OPTION_SECTION}
    result = train_run(
        DEFAULT.replace(**options), out, resume=resume, overwrite=overwrite, max_steps=max_steps
    )
    runs = [r for r in result.get("runs", {"": result}).values() if r["epochs"]]
    for r in runs:
        console.print(f"checkpoint: {r['checkpoint']}")
    for r in result.get("runs", {"": result}).values():
        if r.get("stopped"):
            s = r["stopped"]
            where = (
                f"stopped at step {s['step']} of {s['of']} in epoch {s['epoch']}: "
                f"{r['checkpoint']} holds it; continue with --resume"
            )
            if s["signal"]:
                raise FanEdgeError(f"{s['signal']}: {where}")
            console.print(where)
    if runs:  # what the model(s) cost to train, to compare FAN with ST at equal compute
        minutes = sum(e["seconds"] for r in runs for e in r["epochs"]) / 60
        frames = sum(e.get("frames_seen", 0) for r in runs for e in r["epochs"]) / 1e6
        console.print(
            f"training cost: {minutes:.1f} min, {frames:.2f}M frames through the "
            "network" + (" (all runs together)" if len(runs) > 1 else "")
        )


@app.command("eval")
def eval_(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(help="Checkpoints from `fan-edge train`, or an `--mode st` folder."),
    ],
    frames: FramesOpt = None,
    ensemble: Annotated[
        bool,
        typer.Option(
            help="Average every model's softmax at each count "
            "(default: the nearest trained count serves)."
        ),
    ] = (False),
    data: Annotated[str | None, typer.Option(help="Default: the run's validation data.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Clips per batch.", min=1, max=MAX_BATCH)] = 32,
) -> None:
    """Top-1/top-5 per frame count, each served by the nearest sub-network (or model)."""
    from fan_edge.train.api import evaluate_checkpoint

    if json_out:
        check_output_path(json_out, "--json file", inputs=checkpoints)  # before the work
    report = evaluate_checkpoint(
        checkpoints, frames or [2, 4, 6, 8, 12, 16, 20], data, batch_size, ensemble=ensemble
    )
    rows = [
        [n, r["subnet_frames"], r["top1"], r["top5"], r["num_clips"]]
        for n, r in report["results"].items()
    ]
    cols = ["frames", "served by", "top-1 %", "top-5 %", "clips"]
    title = " + ".join(map(str, report["checkpoints"]))
    console.print(_table(f"{title} on {report['data']}", cols, rows))
    if json_out:
        from fan_edge.fileio import write_json

        write_json(json_out, report)
        console.print(f"wrote {json_out}")


@app.command()
def flops(
    preset: Annotated[str, typer.Option(help=PRESET_HELP)] = "r50",
    frames: FramesOpt = None,
    size: Annotated[
        int | None,
        typer.Option(help="Input size (default: the preset's).", min=MIN_SIZE, max=MAX_SIZE),
    ] = None,
    classes: Annotated[
        int, typer.Option(help="Number of classes (Sth-Sth V1: 174).", min=2, max=MAX_CLASSES)
    ] = 174,
    checkpoint: Annotated[Path | None, typer.Option(help="Use this checkpoint's model.")] = None,
) -> None:
    """Parameters and GFLOPs (multiply-adds) of each sub-network, as the paper counts them."""
    from fan_edge.train.api import model_costs

    report = model_costs(preset, frames, size, classes, checkpoint)
    rows = [
        [c["frames"], f"{c['gflops']:.3f}", f"{c['params'] / 1e6:.3f}M"] for c in report["subnets"]
    ]
    console.print(_table(report["title"], ["frames", "GFLOPs", "params"], rows))
    console.print(
        f"FAN total params {report['total_params'] / 1e6:.3f}M; private to sub-networks "
        f"{report['private_params'] / 1e3:.1f}K in all; FAN adds "
        f"{report['extra_params'] / 1e3:.1f}K to a plain model ({report['extra_pct']:.2f}%)"
    )


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint from `fan-edge train`.")],
    frames: FramesOpt = None,
    out: Annotated[Path | None, typer.Option(help="Bundle folder (default models/<run>).")] = None,
    fold: Annotated[bool, typer.Option(help="Standalone graphs, norms folded (no sharing).")] = (
        False
    ),
    engine: Annotated[
        str | None,
        typer.Option(help=f"Also build for a target, as `fan-edge build` does: {targets_help()}."),
    ] = None,
    fp16: Annotated[bool, typer.Option(help="trt: fp16 engines.")] = False,
    strip: Annotated[bool, typer.Option(help="trt: weight-stripped plans.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
) -> None:
    """Split a FAN checkpoint into per-frame-count ONNX graphs sharing one weights file."""
    from exporters import export as export_bundle
    from fan_edge.bundle import Bundle

    out = out or Path("models") / checkpoint.resolve().parent.name
    path = export_bundle(
        checkpoint,
        frames or [4, 8, 16],
        out,
        engine=engine,
        fold=fold,
        fp16=fp16,
        strip=strip,
        overwrite=overwrite,
        log=console.print,
    )
    show_bundle(Bundle(path))


@app.command("build")
def build_(
    bundle: Annotated[Path, typer.Argument(help="A bundle from `fan-edge export`.")],
    target: Annotated[str, typer.Option(help=f"What to build: {targets_help()}.")],
    fp16: Annotated[bool, typer.Option(help="trt: fp16 engines.")] = False,
    strip: Annotated[bool, typer.Option(help="trt: weight-stripped plans.")] = False,
) -> None:
    """Build a bundle's graphs for a target on this device (no PyTorch needed) and record
    the artifacts in its manifest, where `fan-edge run --backend trt` finds them."""
    from exporters import build
    from fan_edge.bundle import Bundle

    show_bundle(Bundle(build(bundle, target, fp16=fp16, strip=strip)))


def show_bundle(bundle) -> None:
    rows = [[s.frames, s.trained_frames, f"{s.gflops:.3f}", s.file] for s in bundle.subnetworks]
    console.print(
        _table(
            f"bundle {bundle.path} ({bundle.manifest['weights']} weights)",
            ["frames", "sub-network", "GFLOPs", "graph"],
            rows,
        )
    )
    files = bundle.manifest["files"]
    total = sum(f["bytes"] for f in files.values())
    sizes = [[name, f"{rec['bytes'] / 1e6:.3f} MB"] for name, rec in files.items()]
    sizes.append(["total", f"{total / 1e6:.3f} MB"])
    console.print(_table("files", ["file", "size"], sizes))


BackendOpt = Annotated[
    str,
    typer.Option(
        help=f"Inference engine: auto (the first of these "
        f"available that can run the bundle); "
        f"{backends_help()}."
    ),
]
DEFAULT_BUNDLE = Path("models/demo")
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        help="Inference threads (default: one per physical core). Latency profiles are kept per "
        "thread count: bench and run with the same value.",
        min=1,
        max=1024,
    ),
]


class DecoderName(str, Enum):
    auto = "auto"
    pyav = "pyav"
    opencv = "opencv"


class BudgetFor(str, Enum):
    clip = "clip"
    network = "network"


@app.command()
def run(
    inputs: Annotated[
        list[Path], typer.Argument(help="Videos, folders of videos, or folders of frames.")
    ],
    budget: Annotated[str | None, typer.Option(help="20gflops, 15ms, 0.015s or 8frames.")] = None,
    budget_for: Annotated[
        BudgetFor,
        typer.Option(
            help="What a latency budget covers: the whole clip (decode + preprocess + inference, "
            "predicted from the clip's decode plan) or the network alone."
        ),
    ] = BudgetFor.clip,
    frames: Annotated[
        int | None, typer.Option(help="Force a frame count (nearest graph).", min=1, max=MAX_FRAMES)
    ] = None,
    bundle: Annotated[Path, typer.Option(help="Bundle folder.")] = DEFAULT_BUNDLE,
    backend: BackendOpt = AUTO,
    decoder: Annotated[
        DecoderName,
        typer.Option(
            help="pyav (FFmpeg; auto uses it, OpenCV for files it cannot open) or opencv "
            "(also GStreamer pipelines)."
        ),
    ] = DecoderName.auto,
    top_k: Annotated[int, typer.Option(help="Labels to show.", min=1, max=MAX_CLASSES)] = 5,
    allow_over_budget: Annotated[bool, typer.Option(help="Run the cheapest if none fits.")] = (
        False
    ),
    eager: Annotated[bool, typer.Option(help="Load every sub-network up front.")] = False,
    jobs: Annotated[int, typer.Option(help="Clips read ahead in parallel.", min=1, max=64)] = 2,
    threads: ThreadsOpt = None,
    output: Annotated[
        Path | None, typer.Option(help="Also write results here: .jsonl, .json or .csv.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON, not tables.")] = False,
) -> None:
    """Classify videos with the sub-network that fits the budget. Needs no PyTorch.

    Exit code 1 if any input failed (each failure is reported in its own row).
    """
    from fan_edge.runtime import Predictor
    from fan_edge.runtime.batch import (
        FORMATS,
        OUTPUT_SUFFIXES,
        expand_inputs,
        predict_many,
        write_outcomes,
    )

    if not bundle.exists() and bundle == DEFAULT_BUNDLE:
        raise FanEdgeError(
            f"no bundle at {bundle}: run `make demo` (it exports one) or pass --bundle"
        )
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise FanEdgeError(f"cannot write {output}: use a {FORMATS} file")
    if frames is not None and budget is not None:
        raise FanEdgeError(
            "--frames and --budget both choose the sub-network: choose one "
            f"(--frames {frames} or --budget {budget})"
        )
    if budget is not None:
        from fan_edge.runtime import parse_budget

        parse_budget(budget)  # a bad budget is one error, not one per input
    if output is not None:
        check_output_path(output, "--output file", inputs=[*inputs, bundle])  # before the work
    predictor = Predictor(
        bundle,
        backend=backend,
        eager=eager,
        decoder=decoder.value,
        budget_for=budget_for.value,
        threads=threads,
    )
    paths = expand_inputs(inputs)
    outcomes = []
    from rich.progress import Progress

    err = Console(stderr=True)
    quiet = json_out or len(paths) < 3 or not err.is_terminal
    with Progress(transient=True, console=err, disable=quiet) as progress:
        task = progress.add_task("classifying", total=len(paths))
        for o in predict_many(
            predictor,
            paths,
            jobs=jobs,
            budget=budget,
            frames=frames,
            top_k=top_k,
            allow_over_budget=allow_over_budget,
        ):
            outcomes.append(o)
            progress.advance(task)
    failed = [o for o in outcomes if o.error]
    if output is not None:
        write_outcomes(output, outcomes)
    if json_out:
        import json

        typer.echo(json.dumps([o.to_dict() for o in outcomes], indent=2))
    elif len(outcomes) == 1 and not failed:
        _print_prediction(outcomes[0].prediction)
    elif len(outcomes) > 1:
        _print_outcomes(outcomes)
    if output is not None and not json_out:
        console.print(f"wrote {len(outcomes)} results to {output}")
    if len(outcomes) == 1 and failed:
        raise FanEdgeError(failed[0].error)
    if failed:
        raise FanEdgeError(f"{len(failed)} of {len(outcomes)} inputs failed (see their rows)")


def stages_line(r) -> str:
    """One line: measured stages, and the whole-clip budget's prediction if there was one."""
    line = (
        f"index {r.index_ms:.1f} ms + decode {r.decode_ms:.1f} ms ({r.decoded_frames} "
        f"frames decoded of {r.input_frames}) + preprocess {r.preprocess_ms:.1f} ms + "
        f"inference {r.infer_ms:.1f} ms = {r.total_ms:.1f} ms"
    )
    if r.predicted:
        line += f" (predicted {r.predicted['total_ms']:.0f} ms)"
    return line


def _print_prediction(r) -> None:
    console.print(
        f"[bold]{r.input}[/bold]: {r.reason}; backend {r.backend}, "
        f"{r.gflops:.3g} GFLOPs, decoder {r.read['decoder']}"
    )
    console.print(stages_line(r))
    if r.read.get("fallback"):
        console.print(
            f"[yellow]note:[/yellow] the decode plan was abandoned: "
            f"{r.read['fallback']}; frames were counted by decoding"
        )
    rows = [
        [i + 1, label, f"{p:.3f}"]
        for i, (label, p) in enumerate(zip(r.labels, r.probs, strict=True))
    ]
    console.print(_table(f"{r.frames}-frame sub-network", ["#", "label", "prob"], rows))


def _print_outcomes(outcomes) -> None:
    rows = []
    for o in outcomes:
        r = o.prediction
        if r is None:
            rows.append([o.input, f"[red]error: {o.error}[/red]", "", "", "", "", ""])
            continue
        pred = f"{r.predicted['total_ms']:.0f}" if r.predicted else ""
        rows.append(
            [
                r.input,
                r.labels[0],
                f"{r.probs[0]:.3f}",
                r.frames,
                f"{r.decode_ms:.1f} ({r.decoded_frames})",
                f"{r.infer_ms:.1f}",
                f"{r.total_ms:.1f}" + (f" / {pred}" if pred else ""),
            ]
        )
    cols = [
        "input",
        "label",
        "prob",
        "frames",
        "decode ms (frames)",
        "infer ms",
        "total ms"
        + (
            " / predicted" if any(o.prediction and o.prediction.predicted for o in outcomes) else ""
        ),
    ]
    console.print(_table(f"{len(outcomes)} inputs", cols, rows))


@app.command("bench")
def bench_(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")] = DEFAULT_BUNDLE,
    backend: BackendOpt = AUTO,
    batch: Annotated[int, typer.Option(help="Clips per run.", min=1, max=MAX_BATCH)] = 1,
    iters: Annotated[
        int, typer.Option(help="Timed runs per sub-network.", min=1, max=100_000)
    ] = 20,
    threads: ThreadsOpt = None,
    video: Annotated[Path | None, typer.Option(help="Video for the end-to-end timing.")] = None,
    codec: Annotated[
        list[str] | None,
        typer.Option(
            help="Codecs whose decode cost to measure (repeat: --codec h264 --codec av1); "
            "h264, hevc, vp9, av1, mpeg4, mjpeg, gif. Default h264."
        ),
    ] = None,
    decode: Annotated[
        bool, typer.Option(help="Measure decode costs (whole-clip budgets need them).")
    ] = True,
    save: Annotated[bool, typer.Option(help="Write the profile into the bundle.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
) -> None:
    """Latency of each sub-network and decode costs on this device; saves the profile that
    `--budget 150ms` uses."""
    from rich.progress import Progress

    from fan_edge.runtime.bench import bench

    codecs = tuple(codec or ["h264"]) if decode else ()
    if save and bundle.is_dir():  # before minutes of timing: the profile must be writable
        from fan_edge.runtime.profile import PROFILE_FILE

        try:
            check_output_path(bundle / PROFILE_FILE, "latency profile")
        except FanEdgeError as e:
            raise FanEdgeError(
                f"{e} (bench saves the profile in the bundle: copy the bundle "
                "somewhere writable, or pass --no-save)"
            ) from None
    with Progress(transient=True, disable=json_out) as progress:
        prof = bench(
            bundle,
            backend=backend,
            batch=batch,
            iters=iters,
            video=video,
            save=save,
            codecs=codecs,
            threads=threads,
            progress=progress,
        )
    if json_out:
        import json

        typer.echo(json.dumps(prof, indent=2))
        return
    rows = [
        [
            n,
            f"{r['p50_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['clips_per_s']:.1f}",
            f"{r['frames_per_s']:.0f}",
            f"{r['with_decode']['p50_ms']:.2f}",
        ]
        for n, r in prof["subnetworks"].items()
    ]
    cols = ["frames", "p50 ms", "p90 ms", "p99 ms", "clips/s", "frames/s", "p50 ms +decode"]
    console.print(_table(f"{prof['device']} | {prof['backend']} | batch {batch}", cols, rows))
    console.print(f"peak RSS {prof['peak_rss_mb']:.0f} MB")
    if "decode" in prof:
        d = prof["decode"]
        rows = [
            [c, *(f"{x:.4g}" for x in coef), f"{100 * d['fit_max_rel_error'][c]:.0f}%"]
            for c, coef in d["codecs"].items()
        ]
        cols = [
            "codec",
            "per clip",
            "per seek",
            "per decoded frame",
            "per decoded Mpx",
            "per MB on the critical path",
            "per decoded MB",
            "per sampled Mpx",
            "worst fit error",
        ]
        console.print(_table("decode cost model (ms)", cols, rows))
    if save:
        console.print(f"profile saved to {prof['saved_to']}: `fan-edge run --budget 15ms` uses it")


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create: videos/, annotations.csv.")],
    num_videos: Annotated[
        int, typer.Option(help="Number of clips.", min=1, max=999_999)
    ] = 200,  # six-digit file names
    seed: Annotated[
        int, typer.Option(help="Seed (clips are a pure function of it).", min=0, max=MAX_SEED)
    ] = 0,
    size: Annotated[
        int, typer.Option(help="Frame size in pixels.", min=MIN_SIZE, max=MAX_SIZE)
    ] = 32,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Write the synthetic temporal-action dataset as real .mp4 files + annotations.csv."""
    from fan_edge.data.export import write_synthetic

    check_free_space(out, synth_bytes(num_videos, size), "--num-videos or --size")
    path = write_synthetic(out, num_videos=num_videos, seed=seed, size=size, overwrite=overwrite)
    console.print(f"wrote {num_videos} videos and {path}")


def synth_bytes(num_videos: int, size: int) -> int:
    """A generous estimate of what `synth` writes: the clips' noise defeats H.264, which
    keeps about 0.1 byte per RGB byte (measured, 16 to 512 px; 0.2 counted here), up to 40
    frames a clip."""
    return num_videos * (40 * size * size * 3 // 5 + 8192)


def check_free_space(out: Path, need: int, lower: str) -> None:
    """Refuse before the work if the file system that will hold `out` has less than `need`."""
    import shutil

    place = out.absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        free = shutil.disk_usage(place).free
    except OSError:
        return  # the output check names the problem
    if need > free:
        raise FanEdgeError(
            f"{out} would take about {need / 1e9:.1f} GB but {place} has "
            f"{free / 1e9:.1f} GB free: lower {lower}, or write elsewhere"
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo run (replaced).")] = Path(
        "runs/demo"
    ),
    bundle: Annotated[Path, typer.Option(help="Bundle to export (replaced if it is one).")] = (
        DEFAULT_BUNDLE
    ),
    epochs: Annotated[int, typer.Option(help="Training epochs.", min=1, max=1000)] = 6,
) -> None:
    """End to end on built-in synthetic data with the tiny model: train, evaluate, export,
    classify a video."""
    from fan_edge.demo import run_demo

    run_demo(out, epochs=epochs, bundle=bundle, console=console)


analyze_app = typer.Typer(no_args_is_help=True, help="Look inside trained models.")
app.add_typer(analyze_app, name="analyze")


@analyze_app.command("bn-shift")
def bn_shift(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(
            help="A FAN checkpoint (its sub-networks are compared), or two checkpoints."
        ),
    ],
    live: Annotated[
        bool,
        typer.Option(
            help="Measure the statistics on data at each of "
            "--frames instead of reading stored ones."
        ),
    ] = False,
    frames: FramesOpt = None,
    clips: Annotated[
        int, typer.Option(help="--live: clips per frame count.", min=1, max=MAX_CLIPS)
    ] = 64,
    data: Annotated[
        str | None, typer.Option(help="--live: default the run's validation data.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for bn_shift.json and bn_shift.png.")] = Path(
        "runs/analysis"
    ),
) -> None:
    """Distance between normalization statistics per layer (the paper's Figure 3)."""
    from fan_edge.analysis.bn_shift import bn_shift_report, plot_bn_shift
    from fan_edge.fileio import write_json

    check_output_path(out, "--out folder", folder=True, inputs=checkpoints)  # before the work
    for name in ("bn_shift.json", "bn_shift.png"):
        check_output_path(out / name, "--out file", inputs=checkpoints)
    report = bn_shift_report(checkpoints, live=live, frames=frames, clips=clips, data=data)
    comps = report["comparisons"]
    names = [r["layer"] for r in comps[0]["layers"]]
    cols = ["layer", "channels"] + [f"{c['a']} vs {c['b']}" for c in comps]
    rows = [
        [name, comps[0]["layers"][i]["channels"]]
        + [f"{c['layers'][i]['sym_kl']:.4f}" for c in comps]
        for i, name in enumerate(names)
    ]
    rows.append(["mean", ""] + [f"{c['summary']['mean_sym_kl']:.4f}" for c in comps])
    console.print(_table("symmetric KL between normalization statistics, per layer", cols, rows))
    write_json(out / "bn_shift.json", report)
    try:
        plot_bn_shift(report, out / "bn_shift.png")
    except ImportError:
        console.print("plot skipped: matplotlib is missing (pip install 'fan-edge[plot]')")
    else:
        console.print(f"wrote {out / 'bn_shift.json'} and {out / 'bn_shift.png'}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 1."""
    args = expand_multi_value_options(sys.argv[1:] if argv is None else list(argv))
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # `kill` unwinds like Ctrl-C, so temporary files are removed on the way out
        signal.signal(signal.SIGTERM, _terminated)
    try:
        code = app(args=args, prog_name="fan-edge", standalone_mode=False)
    except FanEdgeError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
    except typer.TyperException as e:  # a usage error: one line too, not typer's box
        message = e.format_message() if hasattr(e, "format_message") else "aborted"
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        if message:  # (no message: the help was shown)
            typer.echo(f"error: {message}{hint}", err=True)
        sys.exit(getattr(e, "exit_code", 1))
    if isinstance(code, int) and code:  # typer.Exit(n), Ctrl-C or SIGTERM (130)
        if code == 130:
            typer.echo(
                f"error: interrupted ({_SIGNAL[0]}): what was being written was removed", err=True
            )
        sys.exit(code)


_SIGNAL = ["Ctrl-C"]


def _terminated(signum, frame) -> None:
    _SIGNAL[0] = "SIGTERM"
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
