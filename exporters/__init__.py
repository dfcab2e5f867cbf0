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
    if engine == "trt":
        _add_engines(path, fp16=fp16, strip=strip)
    return path


def _add_engines(path: Path, *, fp16: bool, strip: bool) -> None:
    import json

    from exporters.tensorrt import build_engines
    from fan_edge.bundle import MANIFEST, Bundle, file_record, seal
    from fan_edge.fileio import write_json

    engines = build_engines(path, fp16=fp16, strip=strip)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["engines"] = engines
    for e in engines:
        manifest["files"][e["file"]] = file_record(path / e["file"])
    write_json(path / MANIFEST, seal(manifest))  # re-sealed: the engines are part of it
    Bundle(path)  # the engine entries pass the runtime's checks
