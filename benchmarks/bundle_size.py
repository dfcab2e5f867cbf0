"""Bundle size on disk: shared FAN bundle vs standalone single-frame-count ONNX models (ST).

For TSM-R50 at 224x224, 174 classes: exports (1) the FAN 4/8/16 bundle with shared weights,
(2) the same with --fold (standalone graphs), (3) one standard single-frame-count model,
whose size times three is what Separated Training ships. Prints a markdown table.

    python benchmarks/bundle_size.py [--preset r50] [--work runs/bench_size]
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, make_checkpoint  # noqa: E402

from exporters import export  # noqa: E402


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="r50")
    p.add_argument("--work", type=Path, default=Path("runs/bench_size"))
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    t0 = time.time()
    fan = make_checkpoint(args.work / "fan.pt", preset_name=args.preset)
    std = make_checkpoint(args.work / "standard.pt", preset_name=args.preset, frames=(8,))
    shared = export(fan, [4, 8, 16], args.work / "fan_shared")
    folded = export(fan, [4, 8, 16], args.work / "fan_folded", fold=True)
    one = export(std, [8], args.work / "standard_8f")
    one_mb = size_mb(one)
    rows = [
        ("one standalone single-frame-count model (standard, 8F)", one_mb),
        ("ST: three standalone models (4F, 8F, 16F)", 3 * one_mb),
        ("FAN bundle, shared weights (4/8/16)", size_mb(shared)),
        ("FAN bundle, --fold (three standalone graphs)", size_mb(folded)),
    ]
    print(
        f"\nTSM-{args.preset.upper()} FAN 4/8/16 at 224x224, 174 classes; {machine()}; "
        f"{time.time() - t0:.0f} s\n"
    )
    print("| artifact | size (MB) | vs one standalone |")
    print("|---|---|---|")
    for name, mb in rows:
        print(f"| {name} | {mb:.1f} | {mb / one_mb:.3f}x |")
    print("\nshared bundle files:")
    for f in sorted(shared.iterdir()):
        print(f"  {f.name:16s} {f.stat().st_size / 1e6:8.2f} MB")


if __name__ == "__main__":
    main()
