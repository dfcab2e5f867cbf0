"""`fan-edge serve`: a bundle on Triton Inference Server (PyTriton), until SIGTERM or Ctrl-C."""

import time
from pathlib import Path
from typing import Annotated

import typer

from fan_edge.cli.app import MAX_BATCH, BackendOpt, ThreadsOpt, command, console
from fan_edge.cli.run import MaxLossOpt, PrecisionName, make_predictor
from fan_edge.runtime.backends import AUTO

PortOpt = Annotated[int, typer.Option(min=1, max=65535)]


@command()
def serve(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    http_port: Annotated[int, typer.Option("--http-port", "--port", min=1, max=65535)] = 8000,
    grpc_port: PortOpt = 8001,
    metrics_port: PortOpt = 8002,
    max_batch: Annotated[
        int, typer.Option(help="Largest batch the dynamic batcher forms.", min=1, max=MAX_BATCH)
    ] = 16,
    batch_delay_us: Annotated[
        int,
        typer.Option(help="How long a request may wait for others to batch with (µs).", min=0),
    ] = 2000,
    batching: Annotated[
        bool,
        typer.Option(help="Dynamic batching of the per-sub-network models (off: one clip a run)."),
    ] = True,
    backend: BackendOpt = AUTO,
    precision: Annotated[
        PrecisionName | None, typer.Option(help="fp32, int8, fp16 or auto, as for `run`.")
    ] = None,
    max_loss: MaxLossOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Serve a bundle over HTTP and gRPC (Triton's KServe v2 protocol): a model per
    sub-network (fan_4f, ...) with dynamic batching, and `fan`, which picks the sub-network
    for a clip of any length and an optional budget. Needs `pip install 'fan-edge[serve]'`;
    no PyTorch."""
    from fan_edge.serve.triton import FanServer, require

    require()
    predictor = make_predictor(bundle, backend, threads, precision, max_loss)
    server = FanServer(
        predictor,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        max_batch=max_batch,
        batch_delay_us=batch_delay_us,
        batching=batching,
    )
    try:
        server.start()
        console.print(
            f"serving {', '.join(server.models())} from {bundle}: http://localhost:{http_port}, "
            f"grpc://localhost:{grpc_port}, metrics http://localhost:{metrics_port}/metrics "
            f"({predictor.backend_name}, {predictor.precisions}); Ctrl-C or SIGTERM stops",
            soft_wrap=True,
        )
        while server.triton.is_alive():
            time.sleep(0.5)
        raise typer.Exit(1)  # Triton died under us (its log says why)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the app turns it into this)
        console.print("stopping")
    finally:
        server.stop()
