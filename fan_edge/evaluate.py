"""Top-1 / top-5 per frame count, each served by its nearest sub-network."""

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from fan_edge.config import ModelConfig
from fan_edge.data.datasets import ClipDataset
from fan_edge.models import FrameAdaptiveNet


@torch.no_grad()
def evaluate(
    model: FrameAdaptiveNet,
    source,
    frame_counts: Sequence[int],
    cfg: ModelConfig,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress=None,
) -> dict[int, dict]:
    """Returns {n: {"top1", "top5", "subnet_frames", "num_clips"}} with accuracies in %."""
    model.eval()
    results = {}
    for n in frame_counts:
        ds = ClipDataset(source, (n,), cfg.input_size, cfg.mean, cfg.std, train=False)
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
        index = model.select(n)
        net = model.subnetwork(index)
        top1 = top5 = total = 0
        task = progress.add_task(f"eval {n}F", total=len(loader), info="") if progress else None
        for (clip,), y in loader:
            logits = net(clip.to(device))
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices.cpu()
            top1 += (top[:, 0] == y).sum().item()
            top5 += (top == y[:, None]).any(dim=1).sum().item()
            total += len(y)
            if progress:
                progress.advance(task)
        if progress:
            progress.remove_task(task)
        results[n] = {
            "top1": 100.0 * top1 / total,
            "top5": 100.0 * top5 / total,
            "subnet_frames": model.frames[index],
            "num_clips": total,
        }
    return results
