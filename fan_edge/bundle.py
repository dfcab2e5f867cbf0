"""Reading and checking a bundle: the folder `fan-edge export` writes. Torch-free.

A bundle is self-describing: `manifest.json` lists every sub-network graph, its cost, the
input contract, the class names and the sha256 of every file, and records its own sha256
(`manifest_sha256`), so an edited manifest is caught like an edited graph. The runtime reads
only this, after checking every field it uses (types, ranges, lengths, finiteness) and, when
verifying, that each graph takes the frames, channels and size the manifest says and outputs
one logit per class.
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NoReturn

from fan_edge.errors import FanEdgeError
from fan_edge.frames import select_subnetwork

MANIFEST = "manifest.json"
SCHEMA = "fan-edge-bundle"
SCHEMA_VERSION = 2  # 2: the manifest records its own sha256
PRECISIONS = ("fp32", "fp16", "int8")  # what a build artifact computes in
INTERPOLATIONS = ("area", "bilinear")  # data/transforms.py
MANIFEST_HASH = "manifest_sha256"
# Files a bundle may hold besides those its manifest lists: measured on the device after export.
DEVICE_FILES = ("latency.json",)
MAX_FRAMES = 10_000
MAX_SIZE = 4096
# The preprocessing this runtime implements (data/transforms.py, data/sampling.py): a
# manifest asking for another one would be silently misread, so it is refused.
INPUT_CONTRACT = {"layout": "BTCHW", "color": "RGB", "dtype": "float32", "sampling": "tsn-center"}
INPUT_SCALE = 1 / 255
RE_EXPORT = "re-export the bundle"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record(path: Path) -> dict:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces), its own hash left out."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_HASH}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(manifest: dict) -> dict:
    """`manifest` with its own sha256 recorded: what writers save and `Bundle` checks."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_HASH}
    body = json.loads(json.dumps(body))  # hashed exactly as a reader will parse it
    return {**body, MANIFEST_HASH: manifest_digest(body)}


def inside(root: Path, relative: str) -> bool:
    """True if `relative` names a path inside `root` (no absolute path, no escape via ..)."""
    if not relative or Path(relative).is_absolute() or "\\" in relative:
        return False
    root = root.resolve()
    target = (root / relative).resolve()
    return target == root or root in target.parents


@dataclass(frozen=True)
class GraphInfo:
    """What a bundle checks in an ONNX graph, read without its weights."""

    locations: set[str]  # external-data files it reads
    input_dims: list  # int for a fixed dim, str for a named (dynamic) one
    input_type: int
    output_dims: list


def graph_info(onnx_path: Path) -> GraphInfo:
    """One read of the graph's structure (not its weights): external data, input, output."""
    import onnx  # light and torch-free; only the graph structure is read, not the weights

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:
        raise FanEdgeError(
            f"{onnx_path} is not a readable ONNX graph ({type(e).__name__}): {RE_EXPORT}"
        ) from None
    graph = model.graph
    locations = set()
    for t in graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            locations |= {e.value for e in t.external_data if e.key == "location"}

    def dims(v) -> list:
        return [
            d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in v.type.tensor_type.shape.dim
        ]

    weights = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    if len(inputs) != 1 or not graph.output:
        raise FanEdgeError(
            f"{onnx_path} has {len(inputs)} inputs and {len(graph.output)} "
            f"outputs, not one clip in and logits out: {RE_EXPORT}"
        )
    return GraphInfo(
        locations, dims(inputs[0]), inputs[0].type.tensor_type.elem_type, dims(graph.output[0])
    )


def external_locations(onnx_path: Path) -> set[str]:
    """The external-data files an ONNX graph reads (its own `location` strings)."""
    return graph_info(onnx_path).locations


def owned_files(path: Path) -> set[str] | None:
    """The files of the bundle at `path` (what `export --overwrite` may replace), or None
    if `path` is not a bundle."""
    try:
        m = json.loads((Path(path) / MANIFEST).read_bytes())
        if not isinstance(m, dict) or m.get("schema") != SCHEMA:
            return None
        return {MANIFEST, *DEVICE_FILES, *map(str, m["files"])}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def _show(value) -> str:
    """A short one-line rendering of a JSON value for an error message."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    try:
        text = json.dumps(value)
    except ValueError:  # an integer too long to print
        return "a very long number"
    return text if len(text) <= 40 else text[:37] + "..."


def field_name(at: str, key) -> str:
    """`at.key` or `at[key]`: a field as error messages name it."""
    if isinstance(key, int):
        return f"{at}[{key}]"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
        return f"{at}[{_show(key)}]"
    return f"{at}.{key}" if at else key


def _finite(value) -> float | None:
    """`value` as a float if it is a finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


class Fields:
    """Checks of a parsed JSON document. Every failure is one FanEdgeError line naming the
    file, the field (`subnetworks[0].gflops`) and the fix."""

    def __init__(self, path: Path, fix: str):
        self.path, self.fix = path, fix

    def fail(self, name: str, problem: str) -> NoReturn:
        raise FanEdgeError(f"{self.path}: {name} {problem}: {self.fix}")

    def get(self, obj, key, at: str = ""):
        if isinstance(obj, dict) and key not in obj:
            self.fail(field_name(at, key), "is missing")
        return obj[key]

    def _check(self, ok: bool, value, name: str, want: str):
        if not ok:
            self.fail(name, f"must be {want}, got {_show(value)}")
        return value

    def mapping(self, obj, key, at: str = "") -> dict:
        v = self.get(obj, key, at)
        return self._check(isinstance(v, dict), v, field_name(at, key), "a JSON object")

    def items(self, obj, key, at: str = "", length: int | None = None) -> list:
        v = self.get(obj, key, at)
        ok = isinstance(v, list) and (length is None or len(v) == length)
        want = f"a list of {length}" if length else "a list"
        return self._check(ok, v, field_name(at, key), want)

    def text(self, obj, key, at: str = "", choices: tuple | None = None) -> str:
        v = self.get(obj, key, at)
        ok = isinstance(v, str) and bool(v) and (choices is None or v in choices)
        want = f"one of {', '.join(map(_show, choices))}" if choices else "a non-empty string"
        return self._check(ok, v, field_name(at, key), want)

    def flag(self, obj, key, at: str = "") -> bool:
        v = self.get(obj, key, at)
        return self._check(isinstance(v, bool), v, field_name(at, key), "true or false")

    def integer(self, obj, key, at: str = "", lo: int = 0, hi: int | None = None) -> int:
        v = self.get(obj, key, at)
        ok = type(v) is int and v >= lo and (hi is None or v <= hi)
        want = f"an integer {f'in {lo}..{hi}' if hi is not None else f'>= {lo}'}"
        return self._check(ok, v, field_name(at, key), want)

    def number(self, obj, key, at: str = "", *, positive: bool = False) -> float:
        """A finite number, >= 0 (or > 0 if `positive`)."""
        v = self.get(obj, key, at)
        f = _finite(v)
        ok = f is not None and (f > 0 if positive else f >= 0)
        self._check(ok, v, field_name(at, key), f"a finite number {'>' if positive else '>='} 0")
        return f

    def real(self, obj, key, at: str = "") -> float:
        """Any finite number."""
        v = self.get(obj, key, at)
        self._check(_finite(v) is not None, v, field_name(at, key), "a finite number")
        return _finite(v)


def read_json(path: Path, fix: str):
    """Parse a JSON file; anything unreadable is one FanEdgeError line."""
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise FanEdgeError(f"{path} is not valid JSON ({type(e).__name__}): {fix}") from None
    except OSError as e:
        raise FanEdgeError(
            f"cannot read {path} ({e.strerror or type(e).__name__}): {fix}"
        ) from None


@dataclass(frozen=True)
class Subnetwork:
    frames: int  # the frame count this graph takes (static T)
    trained_frames: int  # the trained sub-network it runs
    file: str
    gflops: float
    params: int
    max_abs_diff: float | None = None  # |ONNX Runtime - PyTorch| measured at export


class Bundle:
    """A verified bundle on disk. `Bundle(path)` raises FanEdgeError on any inconsistency.

    The manifest's own hash and schema are always checked; `verify` also hashes every file
    and reads each graph's input and output shapes.
    """

    def __init__(self, path: str | Path, *, verify: bool = True):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not mpath.is_file():
            raise FanEdgeError(
                f"{self.path} is not a bundle (no {MANIFEST}): create one with `fan-edge export`"
            )
        self.manifest = m = _read_manifest(mpath)
        self.subnetworks, self.classes, self.input, self._files = check_manifest(m, mpath)
        if verify:
            self.verify()

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(s.frames for s in self.subnetworks)

    def verify(self) -> None:
        """Every listed file exists inside the bundle and matches its sha256; every graph
        takes (batch, frames, 3, size, size) and outputs (batch, classes)."""
        files = self._files
        # Graphs sit at the bundle's top level, so their external-data locations (resolved
        # against the graph's own folder) are relative to the bundle too.
        referenced = [s.file for s in self.subnetworks]
        for e in self.manifest.get("engines", []):
            referenced += [e["file"], *e.get("reads", [])]
        if self.manifest.get("weights_file"):
            referenced.append(self.manifest["weights_file"])
        for name in referenced:
            if name not in files:
                raise FanEdgeError(f"{self.path}: {name!r} is not listed in the manifest's files")
        for s in self.subnetworks:
            if "/" in s.file or "\\" in s.file:
                raise FanEdgeError(f"{self.path}: graph {s.file!r} must sit at the bundle's top")
        for name, (size, digest) in files.items():
            if not inside(self.path, name):
                raise FanEdgeError(f"{self.path}: file {name!r} points outside the bundle")
            p = self.path / name
            if p.is_symlink() or not p.is_file():
                raise FanEdgeError(f"{self.path}: missing file {name}: re-export the bundle")
            try:
                same = p.stat().st_size == size and sha256_file(p) == digest
            except OSError as e:
                reason = e.strerror or type(e).__name__
                raise FanEdgeError(f"{self.path}: cannot read {name} ({reason})") from None
            if not same:
                raise FanEdgeError(
                    f"{self.path}: {name} is corrupt or modified (sha256 mismatch): "
                    "re-export or re-copy the bundle"
                )
        size = self.input["size"]
        for s in self.subnetworks:
            g = graph_info(self.path / s.file)
            for location in g.locations:
                if not inside(self.path, location) or location not in files:
                    raise FanEdgeError(
                        f"{self.path}: {s.file} reads weights from {location!r}, "
                        "outside the bundle's listed files; refusing to load it"
                    )
            want = [s.frames, 3, size, size]
            if len(g.input_dims) != 5 or g.input_dims[1:] != want or g.input_type != 1:
                raise FanEdgeError(
                    f"{self.path}: {s.file} takes {_dims(g.input_dims)} but the manifest's "
                    f"subnetworks frames {s.frames} and input.size {size} say (batch, "
                    f"{', '.join(map(str, want))}) float32: {RE_EXPORT}"
                )
            if len(g.output_dims) != 2 or g.output_dims[1] != len(self.classes):
                raise FanEdgeError(
                    f"{self.path}: {s.file} outputs {_dims(g.output_dims)} but the manifest's "
                    f"classes name {len(self.classes)}: {RE_EXPORT}"
                )
        for e in self.manifest.get("engines", []):  # built ONNX graphs (int8, ...) likewise
            if not e["file"].endswith(".onnx"):
                continue
            folder = PurePosixPath(e["file"]).parent
            for location in graph_info(self.path / e["file"]).locations:
                where = (folder / location).as_posix()
                if not inside(self.path, where) or where not in e.get("reads", []):
                    raise FanEdgeError(
                        f"{self.path}: {e['file']} reads weights from {location!r}, which its "
                        "manifest record does not list; refusing to load it: rebuild the target"
                    )

    def subnetwork_for(self, num_frames: int) -> Subnetwork:
        """The graph for `num_frames` frames: exact if exported, else the nearest."""
        return self.subnetworks[select_subnetwork(num_frames, self.frames)]

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def read_size(self) -> int | None:
        """The shorter side readers resize frames to as they decode them: the input
        contract's resize with the area filter; None (as stored) for another interpolation,
        which `transform` then applies."""
        spec = self.input
        return spec["resize_to"] if spec["interpolation"] == "area" else None

    @property
    def clip_seconds(self) -> float | None:
        """How long the training clips were, when the export knew (a stream's window)."""
        return self.input.get("clip_seconds")

    def transform(self, frames):
        """(T, H, W, 3) uint8 RGB -> (T, 3, S, S) float32, as the input contract says."""
        from fan_edge.data.transforms import eval_transform

        spec = self.input
        return eval_transform(
            frames,
            spec["size"],
            spec["mean"],
            spec["std"],
            spec["resize_to"],
            spec["interpolation"],
        )


def _dims(dims: list) -> str:
    return "(" + ", ".join(str(d) if d != "" else "?" for d in dims) + ")"


def check_manifest(m: dict, where: Path) -> tuple[list, list[str], dict, dict]:
    """Every field of a parsed manifest (not its files): (subnetworks, classes, input, files).
    Writers check a manifest with it before they save one."""
    c = Fields(where, RE_EXPORT)
    subnetworks = _subnetworks(c, m)
    _trained_frames(c, m)
    classes, inputs, files = _classes(c, m), _input(c, m), _files(c, m)
    _weights_and_engines(c, m, tuple(s.frames for s in subnetworks))
    if "validation" in m:  # the training run's validation data (`build --val`'s default)
        v = c.mapping(m, "validation")
        c.text(v, "data", "validation")
        c.integer(v, "seed", "validation")
        c.integer(v, "clips", "validation", 1)
        if v.get("sha256") is not None:
            c.text(v, "sha256", "validation")
    return subnetworks, classes, inputs, files


def _read_manifest(mpath: Path) -> dict:
    """The parsed manifest, after its schema, version and own sha256 are checked."""
    m = read_json(mpath, RE_EXPORT)
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        raise FanEdgeError(f"{mpath} is not a fan-edge bundle manifest")
    version = m.get("schema_version")
    if type(version) is not int:
        raise FanEdgeError(
            f"{mpath}: schema_version must be an integer, got {_show(version)}: {RE_EXPORT}"
        )
    if version < 1:
        raise FanEdgeError(f"{mpath}: schema_version must be >= 1, got {version}: {RE_EXPORT}")
    if version > SCHEMA_VERSION:
        raise FanEdgeError(
            f"{mpath}: bundle schema {version} is newer than this fan-edge "
            "understands: upgrade fan-edge or re-export"
        )
    if version < SCHEMA_VERSION:
        raise FanEdgeError(
            f"{mpath}: bundle schema {version} was made by an older fan-edge "
            "(its manifest is not hashed): re-export the bundle"
        )
    recorded = m.get(MANIFEST_HASH)
    if not isinstance(recorded, str) or not re.fullmatch(r"[0-9a-f]{64}", recorded):
        raise FanEdgeError(
            f"{mpath}: {MANIFEST_HASH} is missing or not a sha256, so edits "
            f"cannot be detected: {RE_EXPORT}"
        )
    try:
        digest = manifest_digest(m)
    except (ValueError, RecursionError):
        digest = None
    if digest != recorded:
        raise FanEdgeError(
            f"{mpath} was edited after export (its sha256 does not match): {RE_EXPORT}"
        )
    return m


def _subnetworks(c: Fields, m: dict) -> list[Subnetwork]:
    records = c.items(m, "subnetworks")
    if not records:
        c.fail("subnetworks", "is empty (no graphs)")
    out = []
    for i in range(len(records)):
        c.mapping(records, i, "subnetworks")
        at, r = f"subnetworks[{i}]", records[i]
        mad = r.get("max_abs_diff")
        out.append(
            Subnetwork(
                frames=c.integer(r, "frames", at, 1, MAX_FRAMES),
                trained_frames=c.integer(r, "trained_frames", at, 1, MAX_FRAMES),
                file=c.text(r, "file", at),
                gflops=c.number(r, "gflops", at, positive=True),
                params=c.integer(r, "params", at, 1),
                max_abs_diff=None if mad is None else c.number(r, "max_abs_diff", at),
            )
        )
    frames = [s.frames for s in out]
    if len(set(frames)) != len(frames):
        c.fail("subnetworks", f"repeat a frame count ({sorted(frames)})")
    files = [s.file for s in out]
    if len(set(files)) != len(files):
        c.fail("subnetworks", "share a graph file")
    return sorted(out, key=lambda s: s.frames)


def _trained_frames(c: Fields, m: dict) -> None:
    """Each graph runs the sub-network that serves its frame count: the one
    `select_subnetwork` picks among the model's trained counts (`model.trained_frames`)."""
    model = c.mapping(m, "model")
    listed = c.items(model, "trained_frames", "model")
    if not listed:
        c.fail("model.trained_frames", "is empty")
    trained = sorted(
        c.integer(listed, i, "model.trained_frames", 1, MAX_FRAMES) for i in range(len(listed))
    )
    if len(set(trained)) != len(trained):
        c.fail("model.trained_frames", f"repeat a frame count ({trained})")
    for i, r in enumerate(m["subnetworks"]):  # checked by _subnetworks
        n, got = r["frames"], r["trained_frames"]
        want = trained[select_subnetwork(n, trained)]
        if got != want:
            c.fail(
                f"subnetworks[{i}].trained_frames",
                f"must be {want} (the sub-network serving {n} frames among the trained "
                f"{', '.join(map(str, trained))}), got {got}",
            )


def _classes(c: Fields, m: dict) -> list[str]:
    classes = c.items(m, "classes")
    for i in range(len(classes)):
        c.text(classes, i, "classes")
    if len(classes) < 2:
        c.fail("classes", f"must name at least 2, got {len(classes)}")
    if len(set(classes)) != len(classes):
        c.fail("classes", "repeat a class name")
    return list(classes)


def _input(c: Fields, m: dict) -> dict:
    spec = c.mapping(m, "input")
    c.integer(spec, "size", "input", 1, MAX_SIZE)
    c.text(spec, "name", "input")
    for key in ("mean", "std"):
        c.items(spec, key, "input", length=3)
    for i in range(3):
        c.real(spec["mean"], i, "input.mean")
        c.number(spec["std"], i, "input.std", positive=True)
    for key, want in INPUT_CONTRACT.items():
        c.text(spec, key, "input", choices=(want,))
    scale = _finite(c.get(spec, "scale", "input"))
    if scale is None or not math.isclose(scale, INPUT_SCALE, rel_tol=1e-9):
        c.fail(
            "input.scale",
            f"must be 1/255 (this fan-edge scales pixels by it), got {_show(spec['scale'])}",
        )
    spec = dict(spec)
    # Bundles from before these fields: the shorter side resized to the crop, area filter.
    if "resize_to" in spec:
        c.integer(spec, "resize_to", "input", spec["size"], MAX_SIZE)
    if "interpolation" in spec:
        c.text(spec, "interpolation", "input", choices=INTERPOLATIONS)
    if "clip_seconds" in spec:  # how long the training clips were (stream windows' default)
        c.number(spec, "clip_seconds", "input", positive=True)
    spec.setdefault("resize_to", spec["size"])
    spec.setdefault("interpolation", "area")
    return spec


def _relative(name: str) -> bool:
    """A plain relative path: no absolute path, no `.`/`..`, no empty part, NUL or backslash."""
    bad = "\0" in name or "\\" in name or len(name) > 1024
    return not bad and all(p not in ("", ".", "..") and len(p) <= 255 for p in name.split("/"))


def _files(c: Fields, m: dict) -> dict[str, tuple[int, str]]:
    files = c.mapping(m, "files")
    out = {}
    for name in files:
        at = field_name("files", name)
        if not _relative(name):
            c.fail(at, "must name a file inside the bundle")
        c.mapping(files, name, "files")
        size = c.integer(files[name], "bytes", at)
        digest = c.text(files[name], "sha256", at)
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            c.fail(f"{at}.sha256", f"must be 64 hex digits, got {_show(digest)}")
        out[name] = (size, digest)
    return out


def _weights_and_engines(c: Fields, m: dict, frames: tuple[int, ...]) -> None:
    weights = c.text(m, "weights", choices=("shared", "folded"))
    file = c.get(m, "weights_file")
    if weights == "shared":
        c.text(m, "weights_file")
    elif file is not None:
        c.fail("weights_file", f"must be null for folded weights, got {_show(file)}")
    # Artifacts of `fan-edge build` targets (named "engines" since TensorRT was the first;
    # a record without "target" is one of those).
    engines = c.items(m, "engines") if "engines" in m else []
    seen = set()
    for i in range(len(engines)):
        c.mapping(engines, i, "engines")
        at, e = f"engines[{i}]", engines[i]
        n = c.integer(e, "frames", at, 1, MAX_FRAMES)
        target = c.text(e, "target", at) if "target" in e else "trt"
        if n not in frames or (target, n) in seen:
            c.fail(
                f"{at}.frames",
                "must be one sub-network's frame count "
                f"({', '.join(map(str, frames))}), once per target; got "
                f"{n}",
            )
        seen.add((target, n))
        c.text(e, "file", at)
        if "reads" in e:  # files the artifact needs besides its own (a shared weights file)
            for j in range(len(c.items(e, "reads", at))):
                c.text(e["reads"], j, f"{at}.reads")
        if "versions" in e:
            c.mapping(e, "versions", at)
        if "precision" in e:
            c.text(e, "precision", at, choices=PRECISIONS)
        if "stripped" in e:
            c.flag(e, "stripped", at)
        if "max_batch" in e:
            c.integer(e, "max_batch", at, 1)
        if "accuracy" in e:  # measured at build; `run --max-loss` reads it
            acc, where = c.mapping(e, "accuracy", at), f"{at}.accuracy"
            c.integer(acc, "clips", where, 1)
            for key in ("fp32_top1", "top1"):
                if not 0 <= c.number(acc, key, where) <= 100:
                    c.fail(f"{where}.{key}", "must be a percentage (0-100)")
            c.real(acc, "loss_points", where)
