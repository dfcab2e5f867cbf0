"""`fan-edge run` and `fan-edge bench`: the torch-free runtime's commands."""

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fan_edge.cli.app import (
    DEFAULT_BUNDLE,
    MAX_BATCH,
    BackendOpt,
    ThreadsOpt,
    command,
    console,
    stages_line,
    table,
)
from fan_edge.config import MAX_CLASSES
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import check_output_path
from fan_edge.frames import MAX_FRAMES
from fan_edge.runtime.backends import AUTO


class DecoderName(str, Enum):
    auto = "auto"
    pyav = "pyav"
    opencv = "opencv"


class BudgetFor(str, Enum):
    clip = "clip"
    network = "network"


class PrecisionName(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


MaxLossOpt = Annotated[
    float | None,
    typer.Option(
        min=0,
        help="Top-1 points a reduced-precision sub-network may lose against fp32 (as recorded "
        "at build): one that loses more runs fp32. --precision auto: default 1.",
    ),
]


def make_predictor(bundle: Path, backend: str, threads, precision, max_loss, **options):
    """The Predictor of the engine options `run`, `stream` and `serve` share."""
    from fan_edge.runtime import Predictor

    return Predictor(
        bundle,
        backend=backend,
        threads=threads,
        precision=precision and precision.value,
        max_loss=max_loss,
        **options,
    )


@command()
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
    precision: Annotated[
        PrecisionName | None,
        typer.Option(
            help="fp32, int8 or fp16 (the bundle's artifacts of that precision), or auto: per "
            "sub-network the fastest measured here (fan-edge bench) within --max-loss. "
            "Default: the backend's own (fp32 for auto)."
        ),
    ] = None,
    max_loss: MaxLossOpt = None,
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
    server: Annotated[
        str | None,
        typer.Option(
            help="Run the network on a `fan-edge serve` of this bundle (http://host:8000 or "
            "grpc://host:8001); videos are read and preprocessed here."
        ),
    ] = None,
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
        precision=precision and precision.value,
        max_loss=max_loss,
        server=server,
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


def _print_prediction(r) -> None:
    console.print(
        f"[bold]{r.input}[/bold]: {r.reason}; backend {r.backend} ({r.precision}"
        f"{': ' + r.precision_reason if r.precision_reason else ''}), "
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
    console.print(table(f"{r.frames}-frame sub-network", ["#", "label", "prob"], rows))


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
                f"{r.frames} {r.precision}",
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
    console.print(table(f"{len(outcomes)} inputs", cols, rows))


@command("bench")
def bench_(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")] = DEFAULT_BUNDLE,
    backend: BackendOpt = AUTO,
    batch: Annotated[int, typer.Option(help="Clips per run.", min=1, max=MAX_BATCH)] = 1,
    iters: Annotated[
        int, typer.Option(help="Timed runs per sub-network.", min=1, max=100_000)
    ] = 20,
    threads: ThreadsOpt = None,
    precision: Annotated[
        PrecisionName | None,
        typer.Option(
            help="Measure this precision only (default: every one the bundle has that an "
            "engine here runs; with --backend, that backend's)."
        ),
    ] = None,
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
    from fan_edge.runtime.precision import measurable_precisions

    if precision is not None and precision.value == "auto":
        raise FanEdgeError("bench measures precisions one by one: name one, or omit --precision")
    wanted = [precision.value] if precision else measurable_precisions(bundle, backend)
    profiles, decode_costs = [], None
    with Progress(transient=True, disable=json_out) as progress:
        for p in wanted:  # decoding costs the same at every precision: measured once
            profiles.append(
                bench(
                    bundle,
                    backend=backend,
                    batch=batch,
                    iters=iters,
                    video=video,
                    save=save,
                    codecs=codecs,
                    threads=threads,
                    precision=p,
                    decode_costs=decode_costs,
                    progress=progress,
                )
            )
            decode_costs = profiles[-1].get("decode")
    if json_out:
        import json

        typer.echo(json.dumps(profiles, indent=2))
        return
    from fan_edge.bundle import Bundle
    from fan_edge.runtime.backends import BACKENDS, artifacts
    from fan_edge.runtime.precision import accuracy_line

    opened = Bundle(bundle, verify=False)
    for i, prof in enumerate(profiles):
        records = artifacts(opened, BACKENDS[prof["backend"]].target)
        _print_profile(prof, batch, save, lambda n, r=records: accuracy_line(r.get(n)), i == 0)


def _print_profile(prof: dict, batch: int, save: bool, accuracy, decode: bool) -> None:
    rows = [
        [
            n,
            f"{r['p50_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['clips_per_s']:.1f}",
            f"{r['frames_per_s']:.0f}",
            f"{r['with_decode']['p50_ms']:.2f}",
            accuracy(int(n)),
        ]
        for n, r in prof["subnetworks"].items()
    ]
    cols = [
        "frames",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "clips/s",
        "frames/s",
        "p50 ms +decode",
        "top-1 vs fp32",
    ]
    title = f"{prof['device']} | {prof['backend']} | {prof['precision']} | batch {batch}"
    console.print(table(title, cols, rows))
    console.print(f"peak RSS {prof['peak_rss_mb']:.0f} MB")
    if decode and "decode" in prof:
        d = prof["decode"]
        rows = [
            [c, *(f"{x:.4g}" for x in coef), f"{100 * d['fit_max_rel_error'][c]:.0f}%"]
            for c, coef in d["codecs"].items()
        ]
        from fan_edge.runtime.decode_cost import MEANING

        cols = ["codec", *(MEANING[f] for f in d["features"]), "worst fit error"]
        title = "decode cost model (ms; seeks, frames, Mpx and MB of the busier decoder)"
        console.print(table(title, cols, rows))
    if save:
        console.print(f"profile saved to {prof['saved_to']}: `fan-edge run --budget 15ms` uses it")
