"""Side-by-side latency of TSM-R50 FAN 4/8/16 at 224x224, batch 1, in one run.

Backends: PyTorch eager (the FAN's sub-networks), ONNX Runtime on the shared bundle (with the
memory-sharing session options, and with ORT's default fusion), ONNX Runtime on the --fold
bundle, and native TensorRT / ORT CUDA when present. Reports p50 per sub-network, the ratio
to PyTorch eager, and achieved GFLOP/s (2 FLOPs per multiply-add) against this machine's
measured peak (a 2048x2048 fp32 matmul in the same run).

    python benchmarks/latency.py [--work runs/bench_size] [--iters 5]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cached_bundle, machine, make_checkpoint  # noqa: E402

from fan_edge.runtime import Predictor  # noqa: E402
from fan_edge.train.checkpoint import load_model  # noqa: E402


def p50(fn, iters: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def matmul_peak_gflops(n: int = 2048, iters: int = 10) -> float:
    """Best rate of an n x n fp32 matmul (best of `iters`: the machine's attainable peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(iters))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/bench_size"))
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = args.work / "fan.pt"
    if not ckpt.exists():
        make_checkpoint(ckpt)
    shared, folded = args.work / "fan_shared", args.work / "fan_folded"
    cached_bundle(ckpt, shared)
    cached_bundle(ckpt, folded, fold=True)

    torch.set_num_threads(torch.get_num_threads())
    peak = matmul_peak_gflops()
    model, _ = load_model(ckpt)
    rng = np.random.default_rng(0)
    clips = {n: rng.standard_normal((1, n, 3, 224, 224), dtype=np.float32) for n in (4, 8, 16)}
    rows: dict[str, dict[int, float]] = {}

    with torch.inference_mode():
        rows["PyTorch eager"] = {
            n: p50(lambda n=n: model(torch.from_numpy(clips[n])), args.iters) for n in clips
        }
    setups = [
        (
            "ORT, shared bundle, default (one session for every sub-network)",
            shared,
            "ort-cpu",
            True,
        ),
        (
            "ORT, shared bundle, speed options (fusion + alteration folded at load)",
            shared,
            "ort-cpu",
            False,
        ),
        ("ORT, --fold bundle", folded, "ort-cpu", False),
    ]
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        setups.append(("ORT CUDA, shared bundle", shared, "ort-cuda", False))
    for name, bundle, backend, share in setups:
        pred = Predictor(bundle, backend=backend, share_weights=share)
        rows[name] = {}
        for s in pred.bundle.subnetworks:
            rows[name][s.frames] = p50(lambda s=s, p=pred: p.logits(clips[s.frames], s), args.iters)
    gflops = {s.frames: s.gflops for s in Predictor(shared).bundle.subnetworks}

    print(
        f"\nTSM-R50 FAN 4/8/16, 224x224, batch 1, fp32; {machine()}; torch "
        f"{torch.__version__}, onnxruntime {ort.__version__}; "
        f"p50 of {args.iters} runs"
    )
    print(f"measured peak (2048x2048 fp32 matmul): {peak:.0f} GFLOP/s\n")
    print(
        "| backend | 4F ms | 8F ms | 16F ms | speed-up vs eager (4/8/16) | "
        "efficiency vs peak (4/8/16) |"
    )
    print("|---|---|---|---|---|---|")
    eager = rows["PyTorch eager"]
    for name, r in rows.items():
        ms = " | ".join(f"{r[n]:.0f}" for n in (4, 8, 16))
        ratio = " / ".join(f"{eager[n] / r[n]:.2f}x" for n in (4, 8, 16))
        eff = " / ".join(f"{100 * 2 * gflops[n] / (r[n] / 1e3) / peak:.0f}%" for n in (4, 8, 16))
        print(f"| {name} | {ms} | {ratio} | {eff} |")
    print("\nTensorRT: not run (not installable here; see README).")


if __name__ == "__main__":
    main()
