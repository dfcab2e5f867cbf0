"""Inference engines behind one small interface (registry.py): `load(bundle, sub) -> run(x)`,
`x` (B, T, 3, H, W) float32 -> logits (B, classes). One file per engine; each registers
itself below."""

from fan_edge.runtime.backends import ort, ort_fp16, ort_int8, tensorrt  # noqa: F401 (register)
from fan_edge.runtime.backends.registry import (
    AUTO,
    BACKENDS,
    artifacts,
    backend_names,
    backends_help,
    pick_backend,
    precision_of,
    register_backend,
    unregister_backend,
)

__all__ = [
    "AUTO",
    "BACKENDS",
    "artifacts",
    "backend_names",
    "backends_help",
    "pick_backend",
    "precision_of",
    "register_backend",
    "unregister_backend",
]
