"""fp32 against int8, side by side in one run.

Cost (TSM-R50 FAN 4/8/16 at 224x224, untrained: size, memory and speed do not depend on the
values): bytes on disk, resident memory with one and with all three sub-networks loaded, and
p50 latency (batch 1), each measured in a fresh process that never imports torch, for the
fp32 runtime modes and the int8 graphs (shared int8 weights in both weight modes, and the
`--private` folded ones). Calibration: synthetic clips, as the cost does not depend on them.

Accuracy (`--accuracy CHECKPOINT`, a FAN trained on the synthetic task): the checkpoint
exported, its int8 graphs calibrated on synthetic clips that are neither training nor
validation clips, then top-1 of fp32 and int8 per sub-network on the checkpoint's own
validation clips, read by the runtime as `fan-edge run` reads a video.

    python benchmarks/precision.py [--work runs/bench_size] [--calib-clips 8] [--iters 5]
    python benchmarks/precision.py --accuracy CHECKPOINT [--calib-clips 32]
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cached_bundle, machine, make_checkpoint  # noqa: E402
from runtime_memory import measure  # noqa: E402

from exporters import build  # noqa: E402
from fan_edge.bundle import Bundle  # noqa: E402


def int8_bundle(fp32: Path, out: Path, clips: int, private: bool) -> Path:
    """A copy of the fp32 bundle with int8 graphs (kept between runs when built alike)."""
    if out.exists():
        engines = Bundle(out).manifest.get("engines", [])
        made = {
            (e["calibration"]["clips"], e["weights"]) for e in engines if e["target"] == "ort-int8"
        }
        if made == {(clips, "private" if private else "shared")}:
            return out
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(fp32, tmp)
    build(tmp, "ort-int8", calib="synthetic", calib_clips=clips, private=private)
    tmp.rename(out)
    return out


def size_mb(bundle: Path, prefix: str = "") -> float:
    files = Bundle(bundle).manifest["files"]
    return sum(f["bytes"] for name, f in files.items() if name.startswith(prefix)) / 1e6


def cost(args) -> None:
    ckpt = args.work / "fan.pt"
    if not ckpt.exists():
        make_checkpoint(ckpt)
    shared = args.work / "fan_shared"
    cached_bundle(ckpt, shared)
    q_shared = int8_bundle(shared, args.work / "fan_int8", args.calib_clips, private=False)
    q_private = int8_bundle(shared, args.work / "fan_int8_private", args.calib_clips, private=True)
    files = Bundle(shared).manifest["files"]
    fp32_mb = sum(f["bytes"] for n, f in files.items() if "/" not in n) / 1e6  # graphs, weights
    rows = [
        ("fp32, one session for all (runtime default)", shared, "ort-cpu", True, fp32_mb),
        ("fp32, speed options (private fused weights)", shared, "ort-cpu", False, fp32_mb),
        ("int8, shared int8 weights, memory-sharing", q_shared, "ort-int8-cpu", True, None),
        ("int8, shared int8 weights, speed options", q_shared, "ort-int8-cpu", False, None),
        ("int8 --private (norms folded, private int8)", q_private, "ort-int8-cpu", False, None),
    ]
    print(
        f"\nTSM-R50 FAN 4/8/16, 224x224, batch 1; {machine()}; p50 of {args.iters} runs; "
        f"int8 calibrated on {args.calib_clips} synthetic clips per sub-network (QDQ, "
        "per-channel int8 weights, uint8 activations); memory is the process's RSS\n"
    )
    print(
        "| runtime | on disk | vs fp32 bundle | loaded: 1 (16F) / all 3 | ratio | "
        "p50 4F / 8F / 16F (ms) | speed-up vs fp32 speed options |"
    )
    print("|---|---|---|---|---|---|---|")
    base = None
    for name, bundle, backend, share, disk in rows:
        disk = disk if disk is not None else size_mb(bundle, "int8/")
        one = measure(bundle, share, 1, 0, backend)
        every = measure(bundle, share, 3, args.iters, backend)
        lat = [every["latency_ms"][k] for k in sorted(every["latency_ms"], key=int)]
        if base is None and not share:
            base = lat
        speed = " / ".join(f"{b / v:.2f}x" for b, v in zip(base, lat, strict=True)) if base else "-"
        print(
            f"| {name} | {disk:.1f} MB | {disk / fp32_mb:.2f}x | "
            f"{one['loaded_mb']:.0f} / {every['loaded_mb']:.0f} MB | "
            f"{every['loaded_mb'] / one['loaded_mb']:.2f}x | "
            f"{' / '.join(f'{v:.0f}' for v in lat)} | {speed} |"
        )
    print(
        "\nOn disk: the fp32 bundle is its graphs and weights.bin; an int8 row is the int8/ "
        "folder it adds (graphs and, when shared, int8/weights.bin)."
    )


def accuracy(args) -> None:
    import torch

    from exporters import export
    from fan_edge.data.synthetic import SyntheticActions
    from fan_edge.data.video import write_video
    from fan_edge.runtime import Predictor

    data = torch.load(args.accuracy, weights_only=True, map_location="cpu")["data"]
    if data.get("val") != "synthetic":
        sys.exit(f"error: {args.accuracy} was not validated on the synthetic task")
    num_val = args.val_clips or data["num_val"]
    val = SyntheticActions(num_val, seed=data["val_seed"])
    with tempfile.TemporaryDirectory(prefix="fan-edge-precision-") as tmp:
        tmp = Path(tmp)
        path = export(args.accuracy, None, tmp / "bundle")
        build(path, "ort-int8", calib="synthetic", calib_clips=args.calib_clips)
        bundle = Bundle(path)
        fp32, int8 = Predictor(bundle, backend="ort-cpu"), Predictor(bundle, backend="ort-int8-cpu")
        hits = {(p, s.frames): 0 for p in ("fp32", "int8") for s in bundle.subnetworks}
        for i in range(num_val):
            video = tmp / "clip.mp4"
            write_video(video, val.render(i))
            for s in bundle.subnetworks:
                raw, record, choice = fp32.read_for(video, frames=s.frames)
                for name, pred in (("fp32", fp32), ("int8", int8)):
                    top = pred.classify(raw, record, choice, top_k=1).labels[0]
                    hits[name, s.frames] += top == bundle.classes[val.label(i)]
    print(
        f"\n{args.accuracy}: top-1 % on {num_val} validation clips (synthetic, seed "
        f"{data['val_seed']}); int8 calibrated on {args.calib_clips} other synthetic clips per "
        f"sub-network; {machine()}\n"
    )
    print("| sub-network | fp32 | int8 | int8 - fp32 |")
    print("|---|---|---|---|")
    for s in bundle.subnetworks:
        a, b = (100 * hits[p, s.frames] / num_val for p in ("fp32", "int8"))
        print(f"| {s.frames}F | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    print(json.dumps({f"{p}_{n}": v for (p, n), v in hits.items()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/bench_size"))
    p.add_argument("--calib-clips", type=int, default=8)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--accuracy", type=Path, help="a FAN checkpoint trained on the synthetic task")
    p.add_argument("--val-clips", type=int, help="validation clips (default: the checkpoint's)")
    args = p.parse_args()
    if args.accuracy:
        accuracy(args)
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        cost(args)


if __name__ == "__main__":
    main()
