"""The `fan-edge` application and what every command shares: one-line errors, list options
that take their values after one flag, tables, the common option types.

Output has two channels: results (tables, predictions, paths written) go to stdout through
`console`; messages about the work (progress of training and export, warnings) are logged
by the library (`logging`, the "fan_edge" logger) and shown on stderr.
"""

import contextlib
import logging
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from fan_edge.errors import FanEdgeError
from fan_edge.runtime.backends import backend_names, backends_help

console = Console()  # results: stdout

MAX_BATCH = 4096  # clips in one batch: more is a typo that exhausts memory
# Ranges of numeric options: typer refuses a value outside one as a usage error (exit code 2).
# Frame sizes (synth) and input sizes (flops), in pixels: below 16 a clip shows nothing; above
# 1024 one synthetic clip or one counting pass takes gigabytes.
MIN_SIZE, MAX_SIZE = 16, 1024
DEFAULT_BUNDLE = Path("models/demo")

PRESET_HELP = (
    "Model preset: tiny, r18, r50, or one a registered backbone adds "
    "(fan_edge.models.register_backbone)."
)
FramesOpt = Annotated[
    list[int] | None,
    typer.Option("--frames", help="Frame counts, e.g. --frames 4 8 16.", show_default=False),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        help="Inference threads (default: one per physical core). Latency profiles are kept per "
        "thread count: bench and run with the same value.",
        min=1,
        max=1024,
    ),
]


def one_of(names, what: str):
    """An option callback: the value must be one of `names()` (a registry's, read when the
    option is parsed, so entries registered after import count); else a usage error."""

    def check(value):
        if value is not None and value not in names():
            raise typer.BadParameter(
                f"{value!r} is not a {what}: choose one of {', '.join(names())}"
            )
        return value

    return check


def _modes() -> list[str]:
    from fan_edge.train.api import ST_MODE
    from fan_edge.train.modes import MODES  # (torch: only when `train` runs)

    return [*MODES, ST_MODE]


def _presets() -> list[str]:
    from fan_edge.config import PRESETS
    from fan_edge.models import BACKBONES  # noqa: F401  (the backbones register their presets)

    return list(PRESETS)


BackendOpt = Annotated[
    str,
    typer.Option(
        help="Inference engine: auto (the first of these available that can run the bundle); "
        f"{backends_help()}.",
        metavar="|".join(backend_names()),
        callback=one_of(backend_names, "backend"),
    ),
]
PresetOpt = Annotated[str, typer.Option(help=PRESET_HELP, callback=one_of(_presets, "preset"))]
ModeOpt = Annotated[
    str,
    typer.Option(
        help="fan: K sub-networks; standard: one count; st: one standard model per count; "
        "mixed / proportional: the paper's baselines over a low and a high count.",
        metavar="fan|standard|st|mixed|proportional",
        callback=one_of(_modes, "training mode"),
    ),
]


class Command(TyperCommand):
    """A command whose integer list options also take several values after one flag:
    `--frames 4 8 16` as well as `--frames 4 --frames 8 --frames 16`. The option's parser
    takes the integers that follow it; anything else ends the list."""

    def make_parser(self, ctx):
        parser = super().make_parser(ctx)
        for option in {id(o): o for o in parser._long_opt.values()}.values():
            if option.action == "append" and option.obj.type_descriptor.annotation == list[int]:
                option.process = _taking_all_integers(option.process)
        return parser


def _taking_all_integers(process):
    def take(value, state) -> None:
        process(value, state)
        # ASCII integers, signed: a negative count is then refused by the frame-set check,
        # with its own message, rather than read as an unknown option
        while state.rargs and re.fullmatch(r"-?[0-9]+", state.rargs[0]):
            process(state.rargs.pop(0), state)

    return take


class Group(TyperGroup):
    """The application: a user mistake is one line on stderr and a non-zero exit (1 for a
    FanEdgeError, 2 for a usage error, 130 when interrupted), never a traceback or a box,
    whether run as `fan-edge` or through Typer's CliRunner. While a command runs, the
    library's log messages go to stderr and SIGTERM unwinds like Ctrl-C; both are undone
    when it returns."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        with _messages_on_stderr(), _sigterm_unwinds() as interrupted:
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except FanEdgeError as e:
                typer.echo(f"error: {e}", err=True)
                code = 1
            except typer.TyperException as e:  # a usage error: one line too, not typer's box
                message = e.format_message() if hasattr(e, "format_message") else "aborted"
                ctx = getattr(e, "ctx", None)
                hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
                if message:  # (no message: the help was shown)
                    typer.echo(f"error: {message}{hint}", err=True)
                code = getattr(e, "exit_code", 1)
        code = code if isinstance(code, int) else 0  # typer.Exit(n), Ctrl-C or SIGTERM (130)
        if code == 130:
            typer.echo(
                f"error: interrupted ({interrupted.by}): what was being written was removed",
                err=True,
            )
        if standalone_mode:
            sys.exit(code)
        return code


class _Interrupted:
    by = "Ctrl-C"


@contextlib.contextmanager
def _sigterm_unwinds():
    """`kill` unwinds like Ctrl-C (a KeyboardInterrupt), so temporary files are removed on
    the way out. Only the main thread can take signals; a handler someone else installed is
    left alone."""
    interrupted = _Interrupted()

    def terminated(signum, frame) -> None:
        interrupted.by = "SIGTERM"
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield interrupted
        return
    signal.signal(signal.SIGTERM, terminated)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _messages_on_stderr():
    """The library's log messages, one plain line each on the stderr of this call (CliRunner
    swaps it): results stay alone on stdout, so they can be piped."""
    log = logging.getLogger("fan_edge")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Frame Adaptive Networks: train once, run at any frame count on the edge.",
)


def command(name: str | None = None, *, group: typer.Typer = app):
    """Register a command (of `group`) with the shared list-option parsing."""
    return group.command(name, cls=Command)


def table(title: str, columns: list[str], rows: list[list]) -> Table:
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


def show_bundle(bundle) -> None:
    rows = [[s.frames, s.trained_frames, f"{s.gflops:.3f}", s.file] for s in bundle.subnetworks]
    console.print(
        table(
            f"bundle {bundle.path} ({bundle.manifest['weights']} weights)",
            ["frames", "sub-network", "GFLOPs", "graph"],
            rows,
        )
    )
    built = bundle.manifest.get("engines", [])
    if built:
        from fan_edge.runtime.precision import accuracy_line

        rows = [
            [e.get("target", "trt"), e["frames"], e.get("precision", "fp32"), e["file"]]
            + [accuracy_line(e)]
            for e in built
        ]
        cols = ["target", "frames", "precision", "artifact", "top-1 vs fp32"]
        console.print(table("built artifacts", cols, rows))
    files = bundle.manifest["files"]
    total = sum(f["bytes"] for f in files.values())
    sizes = [[name, f"{rec['bytes'] / 1e6:.3f} MB"] for name, rec in files.items()]
    sizes.append(["total", f"{total / 1e6:.3f} MB"])
    console.print(table("files", ["file", "size"], sizes))


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
