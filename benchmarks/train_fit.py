"""How well each sub-network fits its own training clips, against its held-out clips.

For runs of benchmarks/reproduce.py on the synthetic benchmark: rebuilds a run's training
clips (the synthetic set drawn with the run's seed) and its validation clips, and prints,
per sub-network, top-1 and the mean top softmax probability (how confident its outputs,
and so a teacher's soft targets, are). A model far above its validation accuracy on its
training clips overfits; one barely above it does not.

    python benchmarks/train_fit.py runs/reproduce/fan_seed0 runs/reproduce/fan-ce_seed0 \
        --num-videos 2000
"""

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fan_edge.config import DataSpec, ModelConfig
from fan_edge.data.datasets import open_source
from fan_edge.errors import FanEdgeError
from fan_edge.train.checkpoint import load_model


@torch.no_grad()
def fit(net: torch.nn.Module, source, n: int, cfg: ModelConfig) -> tuple[float, float]:
    """(top-1 %, mean top softmax) of one sub-network on `source` at `n` frames."""
    ds = cfg.eval_dataset(source, (n,))
    hits = confidence = total = 0.0
    for (clip,), y in DataLoader(ds, batch_size=64):
        p = net(clip).softmax(dim=1)
        hits += (p.argmax(dim=1) == y).sum().item()
        confidence += p.max(dim=1).values.sum().item()
        total += len(y)
    return 100.0 * hits / total, confidence / total


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="run folders (holding checkpoint.pt)")
    p.add_argument("--num-videos", type=int, default=2000, help="the run's training clips")
    args = p.parse_args(argv)
    print("| run | frames | train top-1 | train mean top p | val top-1 | val mean top p |")
    print("|---|---|---|---|---|---|")
    try:
        for run in args.runs:
            report(run, args.num_videos)
    except FanEdgeError as e:
        sys.exit(f"error: {e}")


def report(run: Path, num_videos: int) -> None:
    model, ckpt = load_model(run / "checkpoint.pt")
    model.eval()
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    spec = DataSpec.of(ckpt)
    if spec is None or spec.train != "synthetic" or spec.val != "synthetic":
        raise FanEdgeError(
            f"{run} was not trained and validated on the synthetic set: this "
            "script rebuilds only synthetic clips"
        )
    seed = ckpt["train_config"]["seed"]  # the training clips are drawn with the run's seed
    train = open_source("synthetic", size=cfg.input_size, seed=seed, num_videos=num_videos)
    val = open_source("synthetic", size=cfg.input_size, seed=spec.val_seed, num_videos=spec.num_val)
    for i, n in enumerate(model.frames):
        net = model.subnetwork(i)
        (ta, tp), (va, vp) = fit(net, train, n, cfg), fit(net, val, n, cfg)
        print(f"| {run.name} | {n} | {ta:.1f} | {tp:.2f} | {va:.1f} | {vp:.2f} |", flush=True)


if __name__ == "__main__":
    main()
