"""Helpers shared by the benchmark scripts (run them from the repository root)."""

import json
import os
import platform
from pathlib import Path

from fan_edge.config import preset
from fan_edge.train.checkpoint import save_untrained


def machine() -> str:
    """The CPU, its core count and its vector extensions: PyTorch and ONNX Runtime pick their
    kernels by ISA (AVX2, AVX-512, VNNI, AMX), so "AMD EPYC, 2 cores" alone does not say
    which latencies to expect."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu == (platform.processor() or platform.machine()):
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    isa = [
        name for name in ("avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "avx2") if name in flags
    ]
    return f"{cpu}, {os.cpu_count()} cores" + (f", {'/'.join(isa)}" if isa else "")


def read_json(path: Path):
    """A JSON file a benchmark wrote earlier; a damaged one is a one-line error, not a traceback."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(
            f"error: {path} is unreadable ({e}): delete it and run again to redo what it records"
        ) from None


def make_checkpoint(
    path: Path,
    *,
    preset_name: str = "r50",
    frames=(4, 8, 16),
    num_classes: int = 174,
    seed: int = 0,
) -> Path:
    """An untrained checkpoint (size, memory and speed do not depend on trained values)."""
    fan = len(frames) > 1
    cfg = preset(
        preset_name,
        num_classes=num_classes,
        frames=tuple(frames),
        specialize_norm=fan,
        weight_alteration=fan,
    )
    return save_untrained(path, cfg, [f"class {i}" for i in range(num_classes)], seed=seed)


def cached_bundle(checkpoint: Path, path: Path, **export_options) -> Path:
    """The bundle at `path`, exported from `checkpoint` unless a valid one is there already
    (one an older fan-edge made, or a damaged one, is exported again)."""
    from exporters import export
    from fan_edge.bundle import Bundle
    from fan_edge.errors import FanEdgeError

    try:
        Bundle(path)
        return path
    except FanEdgeError:
        pass
    return export(checkpoint, [4, 8, 16], path, overwrite=path.exists(), **export_options)
