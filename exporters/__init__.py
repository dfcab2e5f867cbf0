"""Exporters: checkpoint -> bundle (`export`, needs torch) and bundle -> target (`build`,
torch-free, on the device). Targets are one file each and register themselves
(registry.py); `build` dispatches through that table.
"""

from pathlib import Path

from exporters import fp16, ort_int8, tensorrt, triton_repo  # noqa: F401  (register targets)
from exporters.registry import (
    TARGETS,
    get_target,
    register_target,
    targets_help,
    targets_taking,
    unregister_target,
    used,
)
from fan_edge.errors import FanEdgeError

__all__ = ["TARGETS", "build", "export", "register_target", "targets_help", "unregister_target"]


def export(
    checkpoint: str | Path,
    frames: list[int] | None,
    out: str | Path,
    *,
    engine: str | None = None,
    fold: bool = False,
    overwrite: bool = False,
    **options: object,
) -> Path:
    """Export `checkpoint` at `frames` (None: its trained counts) to the bundle `out`; with
    `engine` also build that target (`options`: the target's, as `build` takes them)."""
    if engine is not None:
        target = get_target(engine, "engine", **options)
        if target.external:
            raise FanEdgeError(
                f"--engine {engine} writes a folder of its own: export, then "
                f"`fan-edge build BUNDLE --target {engine}`"
            )
        if target.requires:
            target.requires()  # fail before the (slow) ONNX export if its tools are missing
        if target.check:  # and if its options cannot work
            target.check(fold=fold, **{k: v for k, v in options.items() if used(v)})
    else:
        for option in [o for o, v in options.items() if used(v)]:  # a target's option alone
            flag = option.replace("_", "-")
            raise FanEdgeError(f"--{flag} needs --engine {' or '.join(targets_taking(option))}")
    from exporters.onnx_bundle import export_onnx_bundle

    path = export_onnx_bundle(checkpoint, frames, out, fold=fold, overwrite=overwrite)
    if engine is not None:
        build(path, engine, **options)
    return path


def build(bundle: str | Path, target: str, **options: object) -> Path:
    """The second stage, torch-free and run on the device: build `target` artifacts from a
    bundle's graphs and record each (file, hash, target, precision, versions) in its
    manifest, replacing that target's earlier ones.

    The bundle is verified first and locked while building. The artifacts are built in a
    temporary folder and the new manifest is checked before anything in the bundle changes:
    a failed build leaves the bundle as it was.
    """
    import json

    import fan_edge
    from fan_edge.bundle import MANIFEST, Bundle, check_manifest, file_record, seal
    from fan_edge.fileio import atomic_dir, locked, write_json

    spec = get_target(target, **options)
    options = {k: v for k, v in options.items() if k in spec.options and used(v)}
    if spec.requires:
        spec.requires()
    path = Bundle(bundle).path  # verified: every hash, every graph
    if spec.check:  # bad options: refused before any work, as `export --engine` does
        spec.check(fold=Bundle(path, verify=False).manifest["weights"] != "shared", **options)
    if spec.external:
        with locked(path, f"building {target}"):
            return spec.build(Bundle(path), **options)
    with locked(path, f"building {target} artifacts"):
        original = Bundle(path)  # as it is now that no other build can change it
        manifest = json.loads((path / MANIFEST).read_text())
        mine = [r for r in manifest.get("engines", []) if r.get("target", "trt") == target]
        owned = {
            name.removeprefix(f"{spec.folder}/")
            for r in mine
            for name in [r["file"], *r.get("reads", [])]
        }

        def only_mine(folder: Path) -> list[str] | None:  # what --overwrite may replace
            files = [p.name for p in folder.iterdir()] if folder.is_dir() else []
            return files if set(files) <= owned else None

        with atomic_dir(
            path / spec.folder, overwrite=True, owned=only_mine, kind=f"{target} artifact folder"
        ) as tmp:
            made = spec.build(original, tmp, **options)
            records, files = [], {}
            for r in made:
                names = [r.get("file"), *r.get("reads", [])]
                for name in names:
                    if not isinstance(name, str) or "/" in name or not (tmp / name).is_file():
                        raise FanEdgeError(
                            f"target {target} recorded {name!r}, which it did not "
                            f"write into its folder: a bug in the target"
                        )
                    files[f"{spec.folder}/{name}"] = file_record(tmp / name)
                record = {
                    **r,
                    "file": f"{spec.folder}/{names[0]}",
                    "target": target,
                    "options": options,
                    "versions": {"fan_edge": fan_edge.__version__, **r.get("versions", {})},
                }
                if names[1:]:
                    record["reads"] = [f"{spec.folder}/{n}" for n in names[1:]]
                records.append(record)
            for old in mine:
                for name in [old["file"], *old.get("reads", [])]:
                    manifest["files"].pop(name, None)
            kept = [r for r in manifest.get("engines", []) if r not in mine]
            manifest["engines"] = kept + records
            manifest["files"].update(files)
            manifest = seal(manifest)
            check_manifest(manifest, path / MANIFEST)  # before the bundle changes
        # The artifacts are in place; the manifest that lists them follows them.
        write_json(path / MANIFEST, manifest)
    Bundle(path)  # the new records pass the runtime's checks
    return path
