"""`fan-edge stream`: classify a camera, a network stream or a file, window by window."""

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fan_edge.cli.app import DEFAULT_BUNDLE, BackendOpt, ThreadsOpt, command, console, table
from fan_edge.cli.run import MaxLossOpt, PrecisionName, make_predictor
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_path, check_output_path
from fan_edge.runtime.backends import AUTO

FAILED = ("stalled", "dropped", "failed")


@command()
def stream(
    source: Annotated[
        str,
        typer.Argument(
            help="A camera (/dev/video0 or its index 0), a URL (rtsp://, http://, udp://, ...), "
            "a GStreamer pipeline, or a video file."
        ),
    ],
    bundle: Annotated[Path, typer.Option(help="Bundle folder.")] = DEFAULT_BUNDLE,
    window: Annotated[
        str | None,
        typer.Option(
            help="Window length, e.g. 2s. Default: the bundle's training clips' length if "
            "it records one, else 2s."
        ),
    ] = None,
    stride: Annotated[
        str | None, typer.Option(help="A result every stride, e.g. 0.5s. Default: window / 4.")
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            help="A latency budget per window (120ms: window close to result) adapts the frame "
            "count window by window; a GFLOPs or frames budget (20gflops, 8frames) fixes it. "
            "Default: the largest sub-network."
        ),
    ] = None,
    realtime: Annotated[
        bool,
        typer.Option(help="Play a file at its own frame rate (as a camera would give it)."),
    ] = False,
    smooth: Annotated[
        int, typer.Option(help="Average scores over the last N windows.", min=1, max=1000)
    ] = 3,
    threshold: Annotated[
        float,
        typer.Option(help="Smoothed score below which no label is given.", min=0.0, max=1.0),
    ] = 0.0,
    timeout: Annotated[
        str,
        typer.Option(help="Give up on a source that does not open or gives no frame this long."),
    ] = "5s",
    max_windows: Annotated[
        int | None, typer.Option(help="Stop after this many windows.", min=1)
    ] = None,
    annotate: Annotated[
        Path | None,
        typer.Option(help="Write the video with the label and sub-network drawn on it (.mp4)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Also write the results here (JSON Lines, .jsonl).")
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help="JSON Lines on stdout even on a terminal (default when piped)."
        ),
    ] = False,
    backend: BackendOpt = AUTO,
    precision: Annotated[
        PrecisionName | None,
        typer.Option(help="fp32, int8, fp16 or auto, as for `fan-edge run`."),
    ] = None,
    max_loss: MaxLossOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Classify live video window by window; with a latency budget the frame count follows
    the device's load. Results are JSON Lines (a live view on a terminal); Ctrl-C stops
    with a one-line summary on stderr. Needs no PyTorch."""
    from fan_edge.runtime.stream import parse_seconds

    if not bundle.exists() and bundle == DEFAULT_BUNDLE:
        raise FanEdgeError(
            f"no bundle at {bundle}: run `make demo` (it exports one) or pass --bundle"
        )
    seconds = {
        "window": window and parse_seconds(window, "--window"),
        "stride": stride and parse_seconds(stride, "--stride"),
    }
    wait = parse_seconds(timeout, "--timeout")
    for path, suffix, what in ((output, ".jsonl", "--output"), (annotate, ".mp4", "--annotate")):
        if path is not None:
            if path.suffix.lower() != suffix:
                raise FanEdgeError(f"cannot write {what} {path}: use a {suffix} file")
            check_output_path(path, f"{what} file", inputs=[bundle, Path(source)])
    predictor = make_predictor(bundle, backend, threads, precision, max_loss)
    s = predictor.stream(
        source,
        **seconds,
        budget=budget,
        realtime=realtime,
        smooth=smooth,
        threshold=threshold,
        annotate=annotate and str(annotate),
        timeout=wait,
        max_windows=max_windows,
    )
    live_view = not json_out and console.is_terminal
    with contextlib.ExitStack() as files:
        log = None
        if output is not None:
            log = files.enter_context(atomic_path(output)).open("w", encoding="utf-8")
            files.callback(log.close)  # (closed before the rename)
        view = files.enter_context(_LiveView()) if live_view else None
        why = ""
        # Held here: an interrupt that lands in this loop's body would otherwise drop the
        # last reference to the generator, whose clean-up summarises before `why` is known.
        results = iter(s)
        try:
            for r in results:
                line = json.dumps(r.to_dict())
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if view is not None:
                    view.update(r)
                else:
                    typer.echo(line)
                    sys.stdout.flush()
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) is how a stream is stopped
            why = "interrupted"
        finally:
            summary = s.close(why)
    err = Console(stderr=True, highlight=False)
    err.print(summary.line(), soft_wrap=True)
    if output is not None:
        err.print(f"wrote {summary.windows} results to {output}")
    if summary.stopped in FAILED:
        raise FanEdgeError(f"{source} {summary.stopped}: {summary.error}")


class _LiveView:
    """The latest windows, redrawn in place (rich) while stdout is a terminal."""

    ROWS = 12

    def __enter__(self):
        from rich.live import Live

        self._rows: list[list] = []
        self._live = Live(table("waiting for the first window", [""], []), console=console)
        self._live.__enter__()
        return self

    def update(self, r) -> None:
        label = r.smoothed_label or "-"
        self._rows = [
            *self._rows,
            [
                f"{r.time:.2f}",
                label,
                f"{r.smoothed_score:.2f}",
                f"{r.subnetwork}F",
                f"{r.total_ms:.0f}",
                r.dropped_frames,
                r.reason,
            ],
        ][-self.ROWS :]
        cols = ["t (s)", "label", "score", "net", "ms", "dropped", "why"]
        self._live.update(table(f"{label}  ({r.subnetwork}-frame sub-network)", cols, self._rows))

    def __exit__(self, *exc):
        self._live.__exit__(*exc)
