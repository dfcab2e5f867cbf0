"""Helpers shared by the benchmark scripts (run them from the repository root)."""

import os
import platform
from pathlib import Path

import torch

from fan_edge.config import TrainConfig, preset
from fan_edge.models import build_model
from fan_edge.train.checkpoint import save_checkpoint


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def make_checkpoint(path: Path, *, preset_name: str = "r50", frames=(4, 8, 16),
                    num_classes: int = 174, seed: int = 0) -> Path:  # fmt: skip
    """An untrained checkpoint whose private layers differ per sub-network (as after training).

    Size, memory and latency do not depend on trained values, so benchmarks need no training.
    """
    fan = len(frames) > 1
    cfg = preset(preset_name, num_classes=num_classes, frames=tuple(frames),
                 specialize_norm=fan, weight_alteration=fan)  # fmt: skip
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.dtype.is_floating_point and ("bn" in name or "alter" in name):
                t.add_(0.05 * torch.randn_like(t))
    mode = "fan" if fan else "standard"
    save_checkpoint(path, model_config=cfg.to_dict(), train_config=TrainConfig(mode=mode).to_dict(),
                    classes=[f"class {i}" for i in range(num_classes)],
                    state_dict=model.state_dict(), epoch=0, metrics=[])  # fmt: skip
    return path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")
