"""Exporters: one table of formats drives validation, help text and dispatch.

Adding a format is one new module plus one row in FORMATS.
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
                     "TensorRT engines built from the ONNX graphs (on the target GPU)", False),
    )
}  # fmt: skip


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
    if engine is not None and engine not in FORMATS:
        raise FanEdgeError(f"unknown engine {engine!r}: choose one of {', '.join(FORMATS)}")
    used = {"fold": fold, "fp16": fp16, "strip": strip}
    allowed = set(FORMATS["onnx"].options) | (set(FORMATS[engine].options) if engine else set())
    bad = [k for k, v in used.items() if v and k not in allowed]
    if bad:
        raise FanEdgeError(f"--{bad[0]} needs --engine trt" if bad[0] in FORMATS["trt"].options
                           else f"--{bad[0]} is not an option of --engine {engine}")  # fmt: skip
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

    if target not in FORMATS or target == "onnx":
        builds = ", ".join(f for f in FORMATS if f != "onnx")
        raise FanEdgeError(f"unknown target {target!r}: choose one of {builds}")
    bad = [k for k, v in {"fp16": fp16, "strip": strip}.items()
           if v and k not in FORMATS[target].options]  # fmt: skip
    if bad:
        raise FanEdgeError(f"--{bad[0]} is not an option of --target {target}")
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
