"""The `fan-edge` application and what every command shares: one-line errors, list options
that take their values after one flag, tables, the common option types.

Output has two channels: results (tables, predictions, paths written) go to stdout through
`console`; messages about the work (progress of training and export, warnings) are logged
by the library (`logging`, the "fan_edge" logger) and shown on stderr.
"""

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from fan_edge.errors import FanEdgeError
from fan_edge.runtime.backends import backends_help

console = Console()  # results: stdout

MAX_BATCH = 4096  # clips in one batch: more is a typo that exhausts memory
# Ranges of numeric options: typer refuses a value outside one as a usage error (exit code 2).
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
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
BackendOpt = Annotated[
    str,
    typer.Option(
        help="Inference engine: auto (the first of these available that can run the bundle); "
        f"{backends_help()}."
    ),
]


class Command(TyperCommand):
    """A command whose integer list options also take several values after one flag:
    `--frames 4 8 16` as well as `--frames 4 --frames 8 --frames 16`. The option's parser
    takes the integers that follow it; anything else ends the list."""

    def make_parser(self, ctx):
        parser = super().make_parser(ctx)
        for option in {id(o): o for o in parser._long_opt.values()}.values():
            described = getattr(option.obj, "type_descriptor", None)
            if option.action == "append" and described and described.annotation == list[int]:
                option.process = _taking_all_integers(option.process)
        return parser


def _taking_all_integers(process):
    def take(value, state) -> None:
        process(value, state)
        while state.rargs and state.rargs[0].isdigit():
            process(state.rargs.pop(0), state)

    return take


class Group(TyperGroup):
    """The application: a user mistake is one line on stderr and a non-zero exit (1 for a
    FanEdgeError, 2 for a usage error, 130 when interrupted), never a traceback or a box,
    whether run as `fan-edge` or through Typer's CliRunner."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        _show_messages()
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # `kill` unwinds like Ctrl-C, so temporary files are removed on the way out
            signal.signal(signal.SIGTERM, _terminated)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
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
                    f"error: interrupted ({_SIGNAL[0]}): what was being written was removed",
                    err=True,
                )
            sys.exit(code)
        sys.exit(0)


_SIGNAL = ["Ctrl-C"]


def _terminated(signum, frame) -> None:
    _SIGNAL[0] = "SIGTERM"
    raise KeyboardInterrupt


def _show_messages() -> None:
    """The library's log messages, one plain line each on the stderr of this call (CliRunner
    swaps it): results stay alone on stdout, so they can be piped."""
    log = logging.getLogger("fan_edge")
    for h in [h for h in log.handlers if getattr(h, "fan_edge_cli", False)]:
        log.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.fan_edge_cli = True
    log.addHandler(handler)
    log.setLevel(logging.INFO)


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
