"""The `fan-edge` command: a package of thin commands over the library, one module per
stage of the data flow (train, export, run, stream, serve, data, demo, analyze); each command
calls one library function (demo.py's job is a sequence of them, printed step by step). app.py holds
what they share.

User mistakes surface as `FanEdgeError`: one line on stderr, exit code 1, no traceback.
Heavy imports (torch, onnx) happen inside the commands that need them, so `fan-edge run`
works on a device without PyTorch.
"""

import importlib

from fan_edge.cli.app import app

# The commands register, and `--help` lists them, in the data flow's order.
COMMAND_MODULES = (
    "train",
    "imports",
    "export",
    "run",
    "stream",
    "serve",
    "data",
    "demo",
    "analyze",
)
for _module in COMMAND_MODULES:
    importlib.import_module(f"fan_edge.cli.{_module}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point (`fan-edge`): exits with the command's code."""
    app(args=argv, prog_name="fan-edge")
