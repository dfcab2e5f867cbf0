"""`fan-edge serve`: a bundle on Triton Inference Server, through PyTriton.

Models (KServe v2 over HTTP and gRPC, with Triton's health and metrics endpoints):
- `fan_4f`, `fan_8f`, ...: one per sub-network; input `clip` (T, 3, S, S) float32 (a batch
  dimension in front), output `logits` (classes,). Triton's dynamic batcher stacks
  concurrent requests, and the stacked batch runs as one batch in the engine.
- `fan`: the router; input `clip` (any T, 3, S, S) float32 and an optional `budget` (a
  string: 20gflops, 8frames, 15ms); outputs `label`, `probs`, `frames` (the graph's count),
  `subnetwork` (its trained count) and `reason`, by the runtime's selection rule
  (serve/route.py). A request that cannot be answered (a budget nothing fits) gets a Triton
  error; the server goes on.
PyTriton runs the Python functions behind Triton's own server binary (in its wheel).
"""

import logging
import os
import sysconfig
from pathlib import Path

import numpy as np

from fan_edge.errors import FanEdgeError

log = logging.getLogger("fan_edge")
ROUTER = "fan"


def model_name(frames: int) -> str:
    return f"fan_{frames}f"


def require():
    try:
        import pytriton  # noqa: F401
    except ImportError:
        raise FanEdgeError(
            "serving needs PyTriton: pip install 'fan-edge[serve]' (Linux x86_64 or "
            "aarch64 with glibc 2.35 or newer)"
        ) from None


def _stub_finds_this_python() -> None:
    """Triton runs the Python functions in a stub process linked to libpython by name; when
    this interpreter's own libpython is not the system's (pyenv, conda), the stub must find
    it first, or it runs another patch release against this one's standard library."""
    libdir = sysconfig.get_config_var("LIBDIR")
    name = sysconfig.get_config_var("INSTSONAME") or ""
    if libdir and name and (Path(libdir) / name).exists():
        paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
        if libdir not in paths:
            os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *paths])


def _check_free(port: int, flag: str) -> None:
    """Triton would exit at once on a taken port, and PyTriton wait two minutes for it."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            raise FanEdgeError(f"port {port} is in use: pass another with {flag}") from None


class FanServer:
    """The models of one bundle, bound to a PyTriton `Triton` (started by `run`)."""

    def __init__(
        self,
        predictor,
        *,
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        max_batch: int = 16,
        batch_delay_us: int = 2000,
        batching: bool = True,
    ):
        require()
        from pytriton.triton import Triton, TritonConfig

        for what, port in (("--port", http_port), ("--grpc-port", grpc_port)):
            _check_free(port, what)
        _check_free(metrics_port, "--metrics-port")

        _stub_finds_this_python()
        self.predictor = predictor
        self.max_batch, self.batch_delay_us, self.batching = max_batch, batch_delay_us, batching
        self.ports = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        config = TritonConfig(
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            exit_timeout_secs=5,
            log_verbose=0,
        )
        self.triton = Triton(config=config)

    def models(self) -> list[str]:
        return [ROUTER, *(model_name(s.frames) for s in self.predictor.bundle.subnetworks)]

    def start(self) -> "FanServer":
        """Bind every model and start Triton (returns when it is ready)."""
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

        p = self.predictor
        size, classes = p.bundle.input["size"], len(p.bundle.classes)
        for sub in p.bundle.subnetworks:
            p.session(sub)  # loaded before the first request
            # without batching: the same interface (a batch dimension) one clip at a time
            config = ModelConfig(
                max_batch_size=self.max_batch if self.batching else 1,
                batcher=DynamicBatcher(max_queue_delay_microseconds=self.batch_delay_us),
            )
            self.triton.bind(
                model_name=model_name(sub.frames),
                infer_func=self._subnetwork(sub),
                inputs=[Tensor(name="clip", dtype=np.float32, shape=(sub.frames, 3, size, size))],
                outputs=[Tensor(name="logits", dtype=np.float32, shape=(classes,))],
                config=config,
                strict=True,
            )
        self.triton.bind(
            model_name=ROUTER,
            infer_func=self._route,
            inputs=[
                Tensor(name="clip", dtype=np.float32, shape=(-1, 3, size, size)),
                Tensor(name="budget", dtype=bytes, shape=(1,), optional=True),
            ],
            outputs=[
                Tensor(name="label", dtype=bytes, shape=(1,)),
                Tensor(name="probs", dtype=np.float32, shape=(classes,)),
                Tensor(name="frames", dtype=np.int32, shape=(1,)),
                Tensor(name="subnetwork", dtype=np.int32, shape=(1,)),
                Tensor(name="reason", dtype=bytes, shape=(1,)),
            ],
            config=ModelConfig(batching=False),
            strict=True,
        )
        self.triton.run()
        return self

    def _subnetwork(self, sub):
        predictor = self.predictor

        def infer(requests):  # Triton stacked them: one batch through the engine
            clips = np.concatenate([r["clip"] for r in requests])
            logits = predictor.logits(clips, sub)
            sizes = np.cumsum([len(r["clip"]) for r in requests])[:-1]
            return [{"logits": z} for z in np.split(logits, sizes)]

        return infer

    def _route(self, requests):
        from fan_edge.serve.route import route, softmax

        out = []
        for r in requests:
            budget = r.data.get("budget")
            text = budget.reshape(-1)[0].decode() if budget is not None and budget.size else None
            try:
                sub, clip, why = route(self.predictor, r["clip"], text)
            except FanEdgeError as e:
                from pytriton.exceptions import PyTritonValidationError

                raise PyTritonValidationError(str(e)) from None
            p = softmax(self.predictor.logits(clip[None], sub)[0])
            out.append(
                {
                    "label": np.array([self.predictor.bundle.classes[int(p.argmax())].encode()]),
                    "probs": p.astype(np.float32),
                    "frames": np.array([sub.frames], np.int32),
                    "subnetwork": np.array([sub.trained_frames], np.int32),
                    "reason": np.array([why.encode()]),
                }
            )
        return out

    def stop(self) -> None:
        self.triton.stop()
