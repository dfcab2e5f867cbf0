"""Exporters: checkpoint -> bundle (`export`, needs torch) and bundle -> target (`build`,
torch-free, on the device). One table of formats gives the option checks and the help text;
`build` still calls the TensorRT module by name (a table-driven dispatch is issue 14's).
"""

from dataclasses import dataclass
from pathlib import Path

from fan_edge.errors import FanEdgeError


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    needs_gpu: bool
    options: tuple[str, ...]
    description: str
    verified_here: bool


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("onnx", ".onnx", False, ("fold",),
                     "per-frame-count ONNX graphs sharing one weights file", True),
        ExportFormat("trt", ".plan", True, ("fp16", "strip"),
                     "TensorRT engines built from the ONNX graphs", False),
    )
}  # fmt: skip


# What the second stage (`fan-edge build`) makes from a bundle: every format but the bundle's.
BUILDS = {name: f for name, f in FORMATS.items() if name != "onnx"}


def _build_format(name: str, flag: str, **options: bool) -> ExportFormat:
    """The second-stage format `name`, after checking that it takes every option used."""
    if name not in BUILDS:
        raise FanEdgeError(f"unknown {flag} {name!r}: choose one of {', '.join(BUILDS)}")
    bad = [k for k, used in options.items() if used and k not in BUILDS[name].options]
    if bad:
        raise FanEdgeError(f"--{bad[0]} is not an option of --{flag} {name}")
    return BUILDS[name]


def targets_help() -> str:
    """The `--target` / `--engine` help, from the table: what each builds, where, verified."""
    return "; ".join(
        f"{f.name}: {f.description}" + (" on the target GPU" if f.needs_gpu else "")
        + (" (not verified here)" if not f.verified_here else "")
        + (f" [--{', --'.join(f.options)}]" if f.options else "")
        for f in BUILDS.values())  # fmt: skip


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
    log=print,
) -> Path:
    """Export `checkpoint` to the bundle `out`; with `engine="trt"` also build engines."""
    if engine is not None:
        _build_format(engine, "engine", fp16=fp16, strip=strip)
    elif fp16 or strip:  # options of a second-stage format, without one
        needs = [f for f, fmt in BUILDS.items() if ("fp16" if fp16 else "strip") in fmt.options]
        raise FanEdgeError(f"--{'fp16' if fp16 else 'strip'} needs --engine {' or '.join(needs)}")
    if engine == "trt":
        from exporters.tensorrt import import_tensorrt

        import_tensorrt()  # fail before the (slow) ONNX export if TensorRT is missing
    from exporters.onnx_bundle import export_onnx_bundle

    path = export_onnx_bundle(checkpoint, frames, out, fold=fold, overwrite=overwrite, log=log)
    if engine is not None:
        build(path, engine, fp16=fp16, strip=strip)
    return path


def build(bundle: str | Path, target: str, *, fp16: bool = False, strip: bool = False) -> Path:
    """The second stage, torch-free and run on the device: build `target` artifacts from a
    bundle's graphs and record them (file, hash, precision, versions) in its manifest.

    The bundle is verified first and locked while building; if the build fails, the files it
    wrote are removed and the manifest is left as it was.
    """
    import json

    from exporters.tensorrt import ENGINE_DIR, build_engines
    from fan_edge.bundle import MANIFEST, Bundle, file_record, seal
    from fan_edge.fileio import locked, write_json

    _build_format(target, "target", fp16=fp16, strip=strip)
    path = Bundle(bundle).path  # verified: every hash, every graph
    engines_dir = path / ENGINE_DIR
    before = set(engines_dir.iterdir()) if engines_dir.is_dir() else set()
    with locked(path, f"building {target} artifacts"):
        try:
            engines = build_engines(path, fp16=fp16, strip=strip)
            manifest = json.loads((path / MANIFEST).read_text())
            for old in manifest.get("engines", []):  # replaced by this build
                manifest["files"].pop(old.get("file"), None)
            manifest["engines"] = engines
            for e in engines:
                manifest["files"][e["file"]] = file_record(path / e["file"])
            write_json(path / MANIFEST, seal(manifest))  # re-sealed: the engines are part of it
        except BaseException:
            for f in set(engines_dir.iterdir()) - before if engines_dir.is_dir() else ():
                f.unlink()
            if engines_dir.is_dir() and not any(engines_dir.iterdir()):
                engines_dir.rmdir()
            raise
    Bundle(path)  # the engine entries pass the runtime's checks
    return path
