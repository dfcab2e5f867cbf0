"""Where FAN's shared-weight gradient comes from, term by term, and how the terms agree.

For a FAN (a checkpoint, or a fresh model with `--preset`), on a few training batches:
the gradient on the *shared* parameters of the teacher's cross-entropy, of each student's
KL towards the teacher (what Mutual Distillation adds), and of each student's own
cross-entropy (what `--no-distill` adds instead); their norms and their cosine with the
teacher's cross-entropy gradient. Also how far the teacher's softmax is from uniform.
This is the measurement behind README's "Training from scratch" analysis.

    python benchmarks/grad_probe.py --preset tiny --data synthetic          # at init
    python benchmarks/grad_probe.py runs/fan/checkpoint.pt --batches 8       # mid-training
"""

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fan_edge.config import ModelConfig, preset
from fan_edge.data.datasets import ClipDataset, open_source
from fan_edge.models import build_model
from fan_edge.train.checkpoint import load_model


def flat_grad(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, params, strict=True)
        ]
    )


def probe(model, loader, batches: int) -> dict[str, list[float]]:
    shared = model.shared_parameters()
    names = {id(p): n for n, p in model.named_parameters()}
    # which entries of the flat gradient belong to the classifier (the last Linear)
    head = torch.cat(
        [torch.full((p.numel(),), names[id(p)].startswith("backbone.fc.")) for p in shared]
    )
    stats: dict[str, list[float]] = {}

    def add(key, value):
        stats.setdefault(key, []).append(float(value.detach() if torch.is_tensor(value) else value))

    per_batch: dict[str, list[torch.Tensor]] = {}  # the total gradient of each loss, per batch
    model.train()
    for b, (clips, y) in enumerate(loader):
        if b >= batches:
            break
        logits = [model(c, subnet=i) for i, c in enumerate(clips)]
        *students, teacher = logits
        ce_t = F.cross_entropy(teacher, y)
        p_t = F.softmax(teacher.detach(), dim=1)
        g_ce_t = flat_grad(ce_t, shared)
        add("teacher CE", ce_t.detach())
        add("teacher max prob", p_t.max(1).values.mean())
        add("|g| teacher CE", g_ce_t.norm())
        total = {
            "teacher CE alone": g_ce_t,
            "paper loss (CE + KL)": g_ce_t.clone(),
            "CE on every sub-network": g_ce_t.clone(),
        }
        for n, z in zip(model.frames[:-1], students, strict=True):
            kl = F.kl_div(F.log_softmax(z, 1), p_t, reduction="batchmean")
            ce = F.cross_entropy(z, y)
            g_kl, g_ce = flat_grad(kl, shared), flat_grad(ce, shared)
            add(f"{n}F KL", kl)
            add(f"|g| {n}F KL", g_kl.norm())
            add(f"|g| {n}F CE", g_ce.norm())
            add(f"cos({n}F KL, teacher CE)", F.cosine_similarity(g_kl, g_ce_t, dim=0))
            for part, mask in (("classifier", head), ("convolutions", ~head)):
                add(f"  {n}F KL: {part} only", F.cosine_similarity(g_kl[mask], g_ce_t[mask], 0))
            add(f"cos({n}F CE, teacher CE)", F.cosine_similarity(g_ce, g_ce_t, dim=0))
            total["paper loss (CE + KL)"] += g_kl
            total["CE on every sub-network"] += g_ce
            total[f"{n}F KL"], total[f"{n}F CE"] = g_kl, g_ce
        for key, g in total.items():
            per_batch.setdefault(key, []).append(g)
    # One batch's gradient is mostly noise; what training follows is the mean over batches.
    # Signal against noise: how much two batches' gradients agree (1 = all signal); then the
    # directions of the mean gradients, where a systematic pull shows however noisy batches are.
    for key, grads in per_batch.items():
        if key[0].isdigit():  # one student's term: its mean direction is below
            continue
        g = F.normalize(torch.stack(grads), dim=1)
        pairs = (g @ g.T)[torch.triu(torch.ones(len(g), len(g), dtype=torch.bool), 1)]
        stats[f"batch-to-batch cos, {key}"] = pairs.tolist()
    mean = {k: torch.stack(v).mean(0) for k, v in per_batch.items()}
    for n in model.frames[:-1]:
        for term in ("KL", "CE"):
            g = mean[f"{n}F {term}"]
            stats[f"mean-gradient cos({n}F {term}, teacher CE)"] = [
                F.cosine_similarity(g, mean["teacher CE alone"], dim=0).item()
            ]
            stats[f"mean-gradient |{n}F {term}| / |teacher CE|"] = [
                (g.norm() / mean["teacher CE alone"].norm()).item()
            ]
    return stats


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", type=Path, help="a FAN checkpoint (else fresh)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    if args.checkpoint:
        model, ckpt = load_model(args.checkpoint)
        cfg = ModelConfig.from_dict(ckpt["model_config"])
    else:
        src0 = open_source(args.data, num_videos=1)
        cfg = preset(args.preset, num_classes=len(src0.classes))
        model = build_model(cfg)
    source = open_source(
        args.data, size=cfg.input_size, seed=args.seed, num_videos=args.batches * args.batch_size
    )
    ds = ClipDataset(source, cfg.frames, cfg.input_size, cfg.mean, cfg.std, train=True)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False)
    stats = probe(model, loader, args.batches)
    name = args.checkpoint or f"fresh {args.preset}"
    print(
        f"{name}: {args.batches} batches of {args.batch_size}, "
        f"uniform CE = {math.log(len(source.classes)):.3f}"
    )
    for key, values in stats.items():
        t = torch.tensor(values)
        spread = f" ± {t.std():.4f}" if len(values) > 1 else ""
        print(f"  {key:44s} {t.mean():8.4f}{spread}")


if __name__ == "__main__":
    main()
