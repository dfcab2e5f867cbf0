"""Top-1 / top-5 per frame count.

One model: each count is served by its nearest sub-network. Several models (e.g. Separated
Training, one standard model per count): by default the model whose trained count is
nearest serves it, the same rule across models; with `ensemble=True` every model sees the
clip and their softmax outputs are averaged (the paper's Ensemble baseline).
"""

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from fan_edge.config import ModelConfig
from fan_edge.errors import FanEdgeError
from fan_edge.frames import select_subnetwork
from fan_edge.models import FrameAdaptiveNet


def serving_networks(
    models: Sequence[FrameAdaptiveNet], n: int, ensemble: bool
) -> list[tuple[int, torch.nn.Module]]:
    """(trained frame count, network) pairs that answer a clip of `n` frames."""
    if ensemble:
        return [(m.frames[m.select(n)], m.subnetwork(m.select(n))) for m in models]
    counts = sorted({f for m in models for f in m.frames})
    best = counts[select_subnetwork(n, counts)]
    owners = [m for m in models if best in m.frames]
    if len(owners) > 1:
        raise FanEdgeError(
            f"{len(owners)} of the models were trained at {best} frames: give "
            "one model per frame count, or --ensemble to average them"
        )
    return [(best, owners[0].subnetwork(owners[0].frames.index(best)))]


def scores(nets: list[tuple[int, torch.nn.Module]], clip: torch.Tensor) -> torch.Tensor:
    """One network's logits, or the mean of several networks' softmax outputs."""
    if len(nets) == 1:
        return nets[0][1](clip)
    return torch.stack([net(clip).softmax(dim=1) for _, net in nets]).mean(dim=0)


@torch.no_grad()
def evaluate(
    model: FrameAdaptiveNet | Sequence[FrameAdaptiveNet],
    source,
    frame_counts: Sequence[int],
    cfg: ModelConfig,
    *,
    ensemble: bool = False,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress=None,
) -> dict[int, dict]:
    """Returns {n: {"top1", "top5", "subnet_frames", "num_clips"}} with accuracies in %."""
    models = [model] if isinstance(model, FrameAdaptiveNet) else list(model)
    for m in models:
        m.eval()
    results = {}
    for n in frame_counts:
        ds = cfg.eval_dataset(source, (n,))
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
        nets = serving_networks(models, n, ensemble)
        top1 = top5 = total = 0
        task = progress.add_task(f"eval {n}F", total=len(loader), info="") if progress else None
        for (clip,), y in loader:
            out = scores(nets, clip.to(device))
            k = min(5, out.shape[1])
            top = out.topk(k, dim=1).indices.cpu()
            top1 += (top[:, 0] == y).sum().item()
            top5 += (top == y[:, None]).any(dim=1).sum().item()
            total += len(y)
            if progress:
                progress.advance(task)
        if progress:
            progress.remove_task(task)
        served = [f for f, _ in nets]
        results[n] = {
            "top1": 100.0 * top1 / total,
            "top5": 100.0 * top5 / total,
            "subnet_frames": served[0] if len(served) == 1 else served,
            "num_clips": total,
        }
    return results
