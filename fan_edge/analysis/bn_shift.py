"""Normalization shift (paper section 3, Figure 3): how far apart, layer by layer, the
normalization statistics of two sub-networks, two models, or two frame counts are.

Each channel's statistics are read as a Gaussian N(mean, var); per layer we report the mean
over channels of the symmetric KL divergence between the two Gaussians, and of the mean
shift in units of their pooled standard deviation. Zero means identical statistics.

Three sources of statistics:
- `stored_stats(model, i)`: running statistics of sub-network i (a FAN's private norms);
- the same for two checkpoints (e.g. standard models trained at 4 and at 16 frames);
- `live_stats(...)`: statistics measured on data fed at a given frame count, i.e. what a
  standard model's norms *see* at 4 frames against what they stored while training at 16.

A LayerNorm (transformers) stores no statistics: it normalizes each token with its own.
The stored comparisons cover BatchNorms only; the live one covers LayerNorms too, with the
per-channel mean and variance of the LayerNorm's input over every token, the same Gaussian
per channel as a BatchNorm's (the paper's section 3 argues LN's statistics shift with the
frame count as BN's do).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader

from fan_edge.config import ModelConfig
from fan_edge.errors import FanEdgeError
from fan_edge.frames import validate_frame_set
from fan_edge.models import FrameAdaptiveNet

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer -> (mean, var) per channel
EPS = 1e-5


def _batch_norms(net: nn.Module) -> list[tuple[str, _BatchNorm]]:
    return [
        (n, m)
        for n, m in net.named_modules()
        if isinstance(m, _BatchNorm) and m.running_mean is not None
    ]


def _input_norms(net: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """Every norm whose input statistics can be measured: (name, module, channel dim)."""
    layer_norms = [
        (n, m, -1)
        for n, m in net.named_modules()
        if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1
    ]
    return [(n, m, 1) for n, m in _batch_norms(net)] + layer_norms


def stored_stats(model: FrameAdaptiveNet, index: int) -> Stats:
    """Running mean / variance of every batch norm that sub-network `index` uses."""
    norms = _batch_norms(model.subnetwork(index))
    if not norms:
        raise FanEdgeError(
            "this model has no batch norms with running statistics to compare: "
            "use --live to measure its layer norms on data"
        )
    return {n: (m.running_mean.detach().clone(), m.running_var.detach().clone()) for n, m in norms}


@torch.no_grad()
def live_stats(
    model: FrameAdaptiveNet,
    source,
    frames: int,
    cfg: ModelConfig,
    *,
    clips: int = 64,
    batch_size: int = 16,
) -> Stats:
    """Mean / variance per channel of each batch norm's and layer norm's *input*, measured on
    `clips` clips of `frames` frames, through the sub-network that serves that count (eval
    mode, nothing updated)."""
    model.eval()
    net = model.subnetwork(model.select(frames))
    sums: dict[str, list] = {}

    def hook(name, channels):
        def record(_module, args, _out):
            x = args[0].detach().double()
            dims = [d for d in range(x.dim()) if d != channels % x.dim()]
            n = x.numel() // x.shape[channels]
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += n
            s[1] = s[1] + x.sum(dims)
            s[2] = s[2] + (x * x).sum(dims)

        return record

    handles = [m.register_forward_hook(hook(n, c)) for n, m, c in _input_norms(net)]
    try:
        ds = cfg.eval_dataset(source, (frames,))
        subset = torch.utils.data.Subset(ds, range(min(clips, len(ds))))
        for (clip,), _ in DataLoader(subset, batch_size=batch_size):
            net(clip)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, (n, s1, s2) in sums.items():
        mean = s1 / n
        out[name] = (mean.float(), (s2 / n - mean * mean).clamp_min(0).float())
    return out


@dataclass(frozen=True)
class LayerShift:
    layer: str
    channels: int
    sym_kl: float  # mean over channels of the symmetric KL between N(mean, var)s
    mean_shift: float  # mean over channels of |mean_a - mean_b| / pooled std


def compare(a: Stats, b: Stats) -> list[LayerShift]:
    """Per-layer distance between two sets of statistics over the same layers."""
    if a.keys() != b.keys():
        raise FanEdgeError(
            "the two models have different normalization layers: compare "
            "models of the same architecture and width"
        )
    rows = []
    for name, (ma, va) in a.items():
        mb, vb = b[name]
        if ma.shape != mb.shape:
            raise FanEdgeError(
                f"layer {name} has {ma.numel()} vs {mb.numel()} channels: "
                "compare models of the same architecture and width"
            )
        va, vb = va.double() + EPS, vb.double() + EPS
        d2 = (ma.double() - mb.double()) ** 2
        sym_kl = 0.25 * (va / vb + vb / va - 2 + d2 * (1 / va + 1 / vb))
        shift = d2.sqrt() / ((va + vb) / 2).sqrt()
        rows.append(LayerShift(name, ma.numel(), sym_kl.mean().item(), shift.mean().item()))
    return rows


def summary(rows: Sequence[LayerShift]) -> dict:
    """Mean over layers, and over each quarter of the depth (early -> late)."""
    kl = [r.sym_kl for r in rows]
    quarters = [kl[i * len(kl) // 4 : (i + 1) * len(kl) // 4] or kl for i in range(4)]
    return {
        "mean_sym_kl": sum(kl) / len(kl),
        "mean_shift": sum(r.mean_shift for r in rows) / len(rows),
        "sym_kl_by_depth_quarter": [sum(q) / len(q) for q in quarters],
    }


def bn_shift_report(
    checkpoints: Sequence,
    *,
    live: bool = False,
    frames: Sequence[int] | None = None,
    clips: int = 64,
    data: str | None = None,
) -> dict:
    """Compare normalization statistics; see the module docstring for the three cases.

    One FAN checkpoint: each sub-network against the highest. Two checkpoints: each one's
    sub-network for `frames` (default: its highest count). `live`: one checkpoint fed data
    at each of `frames` (default 4 and 16), each count against the last.
    """
    from fan_edge.train.api import validation_source
    from fan_edge.train.checkpoint import load_model

    if not 1 <= len(checkpoints) <= 2 or (live and len(checkpoints) != 1):
        raise FanEdgeError(
            "give one checkpoint (a FAN, or any model with --live) or two checkpoints to compare"
        )
    if live and frames:
        validate_frame_set(frames)  # distinct and >= 1, before loading anything
    loaded = [load_model(p) for p in checkpoints]
    model, ckpt = loaded[0]
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    pairs: list[tuple[str, str, Stats, Stats]] = []
    if live:
        counts = list(frames or (4, 16))  # in the order given: each against the last
        if len(counts) < 2:
            raise FanEdgeError("--live compares frame counts: pass two or more, e.g. --frames 4 16")
        _, source = validation_source(checkpoints[0], ckpt, data)
        stats = {n: live_stats(model, source, n, cfg, clips=clips) for n in counts}
        pairs = [
            (f"data at {n}F", f"data at {counts[-1]}F", stats[n], stats[counts[-1]])
            for n in counts[:-1]
        ]
    elif len(loaded) == 2:
        picks = list(frames or [m.frames[-1] for m, _ in loaded])
        if len(picks) != 2:
            raise FanEdgeError("with two checkpoints --frames takes two counts, one per model")
        (ma, _), (mb, _) = loaded
        ia, ib = ma.select(picks[0]), mb.select(picks[1])
        name_a, name_b = (Path(p).parent.name or str(p) for p in checkpoints)
        pairs = [
            (
                f"{name_a} ({ma.frames[ia]}F)",
                f"{name_b} ({mb.frames[ib]}F)",
                stored_stats(ma, ia),
                stored_stats(mb, ib),
            )
        ]
    else:
        if len(model.frames) < 2 or not cfg.specialize_norm:
            raise FanEdgeError(
                f"{checkpoints[0]} has one set of normalization statistics: pass "
                "a second checkpoint, or --live --frames 4 16 to measure it on "
                "data"
            )
        top = len(model.frames) - 1
        ref = stored_stats(model, top)
        pairs = [
            (
                f"sub-network {model.frames[i]}F",
                f"sub-network {model.frames[top]}F",
                stored_stats(model, i),
                ref,
            )
            for i in range(top)
        ]
    comparisons = []
    for a, b, sa, sb in pairs:
        rows = compare(sa, sb)
        worst = max(rows, key=lambda r: r.sym_kl).layer
        comparisons.append(
            {
                "a": a,
                "b": b,
                "layers": [r.__dict__ for r in rows],
                "summary": summary(rows),
                "example_layer": worst,
                "example_means": [sa[worst][0].tolist(), sb[worst][0].tolist()],
            }
        )
    return {"checkpoints": [str(p) for p in checkpoints], "live": live, "comparisons": comparisons}


def plot_bn_shift(report: dict, path) -> None:
    """Per-layer symmetric KL for each comparison, and per-channel means of the layer that
    moved most (the paper's Figure 3 shows such a layer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fan_edge.fileio import atomic_path

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for c in report["comparisons"]:
        kl = [r["sym_kl"] for r in c["layers"]]
        left.plot(range(1, len(kl) + 1), kl, marker=".", label=f"{c['a']} vs {c['b']}")
    left.set(
        xlabel="normalization layer (input to output)",
        ylabel="symmetric KL (mean over channels)",
        title="normalization shift per layer",
        yscale="log",
    )
    left.legend(fontsize=7)
    first = report["comparisons"][0]
    for means, label in zip(first["example_means"], (first["a"], first["b"]), strict=True):
        right.plot(means, lw=1, label=label)
    right.set(xlabel="channel", ylabel="mean", title=f"running mean, {first['example_layer']}")
    right.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
