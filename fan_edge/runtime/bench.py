"""`fan-edge bench`: per-sub-network latency on this device, saved as the bundle's profile."""

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from fan_edge.runtime.predictor import Predictor
from fan_edge.runtime.profile import device_name, profile_key, write_profile


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "runs": len(ms)}  # fmt: skip


def bench(bundle: str | Path, *, backend: str = "auto", batch: int = 1, iters: int = 20,
          warmup: int = 3, video: Path | None = None, save: bool = True,
          progress=None) -> dict:  # fmt: skip
    """Time every sub-network; returns the profile (and writes it into the bundle)."""
    pred = Predictor(bundle, backend=backend)
    size = pred.bundle.input["size"]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        if video is None:  # an end-to-end input: a real encoded clip at the model's size
            from fan_edge.data.synthetic import SyntheticActions
            from fan_edge.data.video import write_video

            video = Path(tmp) / "bench.mp4"
            write_video(video, SyntheticActions(1, seed=0, size=size, min_frames=48,
                                                max_frames=48).render(0))  # fmt: skip
        results = {}
        task = progress.add_task("bench", total=len(pred.bundle.subnetworks) * (iters + warmup)) \
            if progress else None  # fmt: skip
        for s in pred.bundle.subnetworks:
            x = rng.standard_normal((batch, s.frames, 3, size, size), dtype=np.float32)
            infer, total = [], []
            for i in range(warmup + iters):
                t0 = time.perf_counter()
                pred.logits(x, s)
                t1 = time.perf_counter()
                pred.predict(video, frames=s.frames)
                t2 = time.perf_counter()
                if i >= warmup:
                    infer.append((t1 - t0) * 1e3)
                    total.append((t2 - t1) * 1e3)
                if progress:
                    progress.advance(task)
            st = _stats(infer)
            results[str(s.frames)] = {
                **st,
                "clips_per_s": 1e3 * batch / st["p50_ms"],
                "frames_per_s": 1e3 * batch * s.frames / st["p50_ms"],
                "with_decode": _stats(total),
                "gflops": s.gflops,
            }
    profile = {
        "device": device_name(pred.backend_name),
        "backend": pred.backend_name,
        "precision": "fp32",
        "batch": batch,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "subnetworks": results,
    }
    if save:
        key = profile_key(profile["device"], profile["backend"], profile["precision"])
        profile["saved_to"] = str(write_profile(pred.bundle, key, {**profile}))
    return profile
