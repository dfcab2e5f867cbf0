"""Exporters: checkpoint -> bundle (`export`, needs torch) and bundle -> target (`build`,
torch-free, on the device). Targets are one file each and register themselves
(registry.py); `build` dispatches through that table.
"""

from pathlib import Path

from exporters import tensorrt  # noqa: F401  (registers its target)
from exporters.registry import (
    TARGETS,
    get_target,
    register_target,
    targets_help,
    targets_taking,
    unregister_target,
)
from fan_edge.errors import FanEdgeError

__all__ = ["TARGETS", "build", "export", "register_target", "targets_help", "unregister_target"]


def export(
    checkpoint: str | Path,
    frames: list[int],
    out: str | Path,
    *,
    engine: str | None = None,
    fold: bool = False,
    fp16: bool = False,
    strip: bool = False,
    overwrite: bool = False,
) -> Path:
    """Export `checkpoint` to the bundle `out`; with `engine` also build that target."""
    options = {"fp16": fp16, "strip": strip}
    if engine is not None:
        target = get_target(engine, "engine", **options)
        if target.requires:
            target.requires()  # fail before the (slow) ONNX export if its tools are missing
    else:
        for option in [o for o, used in options.items() if used]:  # a target's option alone
            raise FanEdgeError(f"--{option} needs --engine {' or '.join(targets_taking(option))}")
    from exporters.onnx_bundle import export_onnx_bundle

    path = export_onnx_bundle(checkpoint, frames, out, fold=fold, overwrite=overwrite)
    if engine is not None:
        build(path, engine, **options)
    return path


def build(bundle: str | Path, target: str, **options: bool) -> Path:
    """The second stage, torch-free and run on the device: build `target` artifacts from a
    bundle's graphs and record each (file, hash, target, precision, versions) in its
    manifest, replacing that target's earlier ones.

    The bundle is verified first and locked while building; if the build fails, the files it
    wrote are removed and the manifest is left as it was.
    """
    import json

    import fan_edge
    from fan_edge.bundle import MANIFEST, Bundle, file_record, seal
    from fan_edge.fileio import locked, write_json

    spec = get_target(target, **options)
    options = {k: bool(v) for k, v in options.items() if k in spec.options}
    if spec.requires:
        spec.requires()
    path = Bundle(bundle).path  # verified: every hash, every graph
    folder = path / spec.folder
    before = set(folder.iterdir()) if folder.is_dir() else set()
    with locked(path, f"building {target} artifacts"):
        try:
            folder.mkdir(exist_ok=True)
            made = spec.build(Bundle(path), folder, **options)
            manifest = json.loads((path / MANIFEST).read_text())
            kept, replaced = [], []
            for old in manifest.get("engines", []):  # this target's earlier build is replaced
                if old.get("target", "trt") == target:
                    manifest["files"].pop(old.get("file"), None)
                    replaced.append(old["file"])
                else:
                    kept.append(old)
            made = [
                {
                    **r,
                    "target": target,
                    "options": options,
                    "versions": {"fan_edge": fan_edge.__version__, **r.get("versions", {})},
                }
                for r in made
            ]
            manifest["engines"] = kept + made
            for r in made:
                manifest["files"][r["file"]] = file_record(path / r["file"])
            write_json(path / MANIFEST, seal(manifest))  # re-sealed: the artifacts are in it
            for name in set(replaced) - {r["file"] for r in made}:  # not rewritten: stale
                (path / name).unlink(missing_ok=True)
        except BaseException:
            for f in set(folder.iterdir()) - before if folder.is_dir() else ():
                f.unlink()
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            raise
    Bundle(path)  # the new records pass the runtime's checks
    return path
