"""`fan-edge bench`: this device's costs, saved as the bundle's latency profile.

Per sub-network: inference latency. Per codec: what reading a clip costs (decode, convert,
resize), fitted on clips generated here (several sizes, keyframe layouts and frame counts)
and read by the runtime's own reader, so whole-clip budgets can price a plan.
"""

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from fan_edge.errors import FanEdgeError
from fan_edge.runtime.predictor import Predictor
from fan_edge.runtime.profile import (
    check_profiles_writable,
    default_threads,
    device_name,
    write_profile,
)


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "runs": len(ms),
    }


# Clips the decode cost is fitted on: 10 s at 30 fps, a keyframe every second (as phones
# record) or every 250 frames (x264's default). On 5 s clips (a keyframe every 30 frames or
# only one) the fit under-predicted 10 s clips by 5-8% on average.
DECODE_SIZES = ((64, 48), (160, 96), (426, 240), (854, 480), (1280, 720), (1920, 1080))
DECODE_GOPS = (30, 250)
DECODE_FRAMES = 300


def bench_decode(
    codecs: tuple[str, ...],
    short_side: int | None,
    counts: tuple[int, ...],
    *,
    sizes=DECODE_SIZES,
    repeats: int = 5,
    progress=None,
    transform=None,
) -> dict:
    """Fit each codec's read cost (see decode_cost.py) on generated clips; images too.

    Frames are read as the runtime reads them for the bundle (`short_side`: its read size,
    None for as stored) and preprocessed by `transform` (default: crop and normalize)."""
    if transform is None:

        def transform(frames):
            return normalize(center_crop(frames, min(frames.shape[1:3])), (0.5,) * 3, (0.5,) * 3)

    from fan_edge.data.transforms import center_crop, normalize
    from fan_edge.runtime.decode_cost import FEATURES, features, fit
    from fan_edge.runtime.video import open_video
    from fan_edge.runtime.video.clips import ENCODERS, write_clip

    task = (
        progress.add_task("decode", total=len(codecs) * len(sizes) * len(DECODE_GOPS))
        if progress
        else None
    )
    models, errors, pre = {}, {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for codec in codecs:
            rows, ms, name = [], [], codec
            for (w, h), gop in ((s, g) for s in sizes for g in DECODE_GOPS):
                path = write_clip(
                    Path(tmp) / f"{codec}_{w}_{gop}{ENCODERS[codec][1]}",
                    DECODE_FRAMES,
                    w,
                    h,
                    codec=codec,
                    gop=gop,
                )
                for n in counts:
                    times = []
                    for _ in range(repeats):
                        with open_video(path) as video:
                            frames, record = video.read(n, short_side)
                            x = features(video.index, video.plan(n))
                            name = video.index.codec or codec  # as a clip's index names it
                        times.append(record.decode_ms)
                        t0 = time.perf_counter()
                        transform(frames)
                        pre.append((time.perf_counter() - t0) * 1e3 / n)
                    rows.append(x)
                    ms.append(float(np.median(times)))
                if progress:
                    progress.advance(task)
            models[name] = fit(rows, ms)
            predicted = np.asarray(rows) @ np.asarray(models[name])
            errors[name] = float(np.max(np.abs(predicted - ms) / np.asarray(ms)))
    return {
        "features": list(FEATURES),
        "codecs": models,
        "fit_max_rel_error": errors,
        "preprocess_ms_per_frame": float(np.median(pre)),
        "short_side": short_side,
        "clips": {
            "sizes": [list(s) for s in sizes],
            "gops": list(DECODE_GOPS),
            "frames": DECODE_FRAMES,
            "counts": list(counts),
        },
    }


def bench(
    bundle: str | Path,
    *,
    backend: str = "auto",
    batch: int = 1,
    iters: int = 20,
    warmup: int = 3,
    video: Path | None = None,
    save: bool = True,
    codecs: tuple[str, ...] = ("h264",),
    decode_sizes=DECODE_SIZES,
    threads: int | None = None,
    precision: str | None = None,
    decode_costs: dict | None = None,
    progress=None,
) -> dict:
    """Time every sub-network; returns the profile (and writes it into the bundle, under
    its device, backend, precision, batch, threads and input size).

    `precision`: the engine's (None: the backend's own). `decode_costs`: a profile's
    "decode" measured already (another precision's: decoding does not depend on it), so
    it is not measured again."""
    from fan_edge.runtime.video.clips import ENCODERS

    unknown = [c for c in codecs if c not in ENCODERS]
    if unknown:  # before minutes of timing, not after
        raise FanEdgeError(
            f"cannot bench decoding of {', '.join(unknown)}: codecs are {', '.join(ENCODERS)}"
        )
    if precision == "auto":
        raise FanEdgeError("bench measures one precision at a time: name it (fp32, int8, fp16)")
    pred = Predictor(bundle, backend=backend, threads=threads, precision=precision)
    if save:
        check_profiles_writable(pred.bundle)  # a damaged or read-only file: before the timing
    size = pred.bundle.input["size"]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        if video is None:  # an end-to-end input: a real encoded clip at the model's size
            from fan_edge.data.synthetic import SyntheticActions
            from fan_edge.data.video import write_video

            video = Path(tmp) / "bench.mp4"
            write_video(
                video,
                SyntheticActions(1, seed=0, size=size, min_frames=48, max_frames=48).render(0),
            )
        subs = pred.bundle.subnetworks
        task = progress.add_task("bench", total=len(subs) * (iters + warmup)) if progress else None
        inputs = {
            s.frames: rng.standard_normal((batch, s.frames, 3, size, size), dtype=np.float32)
            for s in subs
        }
        infer = {s.frames: [] for s in subs}
        total = {s.frames: [] for s in subs}
        # In turns, not one sub-network after the other: a slow stretch of a shared machine
        # then lands on every sub-network alike instead of skewing one of them. (Each run
        # then follows another graph's, as in a budgeted `run`, which picks per clip.)
        for i in range(warmup + iters):
            for s in subs:
                t0 = time.perf_counter()
                pred.logits(inputs[s.frames], s)
                t1 = time.perf_counter()
                pred.predict(video, frames=s.frames)
                t2 = time.perf_counter()
                if i >= warmup:
                    infer[s.frames].append((t1 - t0) * 1e3)
                    total[s.frames].append((t2 - t1) * 1e3)
                if progress:
                    progress.advance(task)
        results = {}
        for s in subs:
            st = _stats(infer[s.frames])
            results[str(s.frames)] = {
                **st,
                "clips_per_s": 1e3 * batch / st["p50_ms"],
                "frames_per_s": 1e3 * batch * s.frames / st["p50_ms"],
                "with_decode": _stats(total[s.frames]),
                "gflops": s.gflops,
            }
    counts = tuple(sorted({2, 4, 8, 16} | {s.frames for s in pred.bundle.subnetworks}))
    decode = decode_costs
    if decode is None and codecs:
        decode = bench_decode(
            tuple(codecs),
            pred.bundle.read_size,
            counts,
            sizes=decode_sizes,
            progress=progress,
            transform=pred.bundle.transform,
        )
    profile = {
        "device": device_name(pred.backend_name),
        "backend": pred.backend_name,
        "precision": pred.precisions,
        "batch": batch,
        "threads": threads or default_threads(),  # what the session uses (see backends/ort.py)
        "size": size,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "subnetworks": results,
    }
    if decode is not None:
        profile["decode"] = decode
    if save:
        profile["saved_to"] = str(write_profile(pred.bundle, {**profile}))
    return profile
