"""Reading and checking a bundle: the folder `fan-edge export` writes. Torch-free.

A bundle is self-describing: `manifest.json` lists every sub-network graph, its cost, the
input contract, the class names and the sha256 of every file. The runtime reads only this.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from fan_edge.errors import FanEdgeError
from fan_edge.frames import select_subnetwork

MANIFEST = "manifest.json"
SCHEMA = "fan-edge-bundle"
SCHEMA_VERSION = 1


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record(path: Path) -> dict:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def inside(root: Path, relative: str) -> bool:
    """True if `relative` names a path inside `root` (no absolute path, no escape via ..)."""
    if not relative or Path(relative).is_absolute() or "\\" in relative:
        return False
    root = root.resolve()
    target = (root / relative).resolve()
    return target == root or root in target.parents


def external_locations(onnx_path: Path) -> set[str]:
    """The external-data files an ONNX graph reads (its own `location` strings)."""
    import onnx  # light and torch-free; only the graph structure is read, not the weights

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:
        raise FanEdgeError(
            f"{onnx_path} is not a readable ONNX graph ({type(e).__name__})"
        ) from None
    out = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            out |= {e.value for e in t.external_data if e.key == "location"}
    return out


@dataclass(frozen=True)
class Subnetwork:
    frames: int  # the frame count this graph takes (static T)
    trained_frames: int  # the trained sub-network it runs
    file: str
    gflops: float
    params: int
    max_abs_diff: float | None = None  # |ONNX Runtime - PyTorch| measured at export


class Bundle:
    """A verified bundle on disk. `Bundle(path)` raises FanEdgeError on any inconsistency."""

    def __init__(self, path: str | Path, *, verify: bool = True):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not mpath.is_file():
            raise FanEdgeError(
                f"{self.path} is not a bundle (no {MANIFEST}): create one with `fan-edge export`"
            )
        try:
            self.manifest = json.loads(mpath.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FanEdgeError(f"{mpath} is not valid JSON ({type(e).__name__}): "
                               "re-export the bundle") from None  # fmt: skip
        m = self.manifest
        if not isinstance(m, dict) or m.get("schema") != SCHEMA:
            raise FanEdgeError(f"{mpath} is not a fan-edge bundle manifest")
        version = m.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise FanEdgeError(f"{mpath}: bundle schema {version!r} is not one this fan-edge "
                               "understands; upgrade fan-edge or re-export")  # fmt: skip
        try:
            self.subnetworks = sorted((Subnetwork(**s) for s in m["subnetworks"]),
                                      key=lambda s: s.frames)  # fmt: skip
            self.classes: list[str] = [str(c) for c in m["classes"]]
            self.input: dict = dict(m["input"])
            for key in ("size", "mean", "std"):
                self.input[key]  # noqa: B018  (presence check)
            files = {n: (int(r["bytes"]), str(r["sha256"])) for n, r in m["files"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise FanEdgeError(f"{mpath} is malformed ({type(e).__name__}: {e}): "
                               "re-export the bundle") from None  # fmt: skip
        if not self.subnetworks:
            raise FanEdgeError(f"{mpath} lists no sub-networks: re-export the bundle")
        self._files = files
        if verify:
            self.verify()

    @property
    def frames(self) -> tuple[int, ...]:
        return tuple(s.frames for s in self.subnetworks)

    def verify(self) -> None:
        """Every listed file exists inside the bundle and matches its sha256."""
        files = self._files
        # Graphs sit at the bundle's top level, so their external-data locations (resolved
        # against the graph's own folder) are relative to the bundle too.
        referenced = [s.file for s in self.subnetworks]
        referenced += [str(e.get("file", "")) for e in self.manifest.get("engines", [])]
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
            if p.stat().st_size != size or sha256_file(p) != digest:
                raise FanEdgeError(f"{self.path}: {name} is corrupt or modified (sha256 mismatch): "
                                   "re-export or re-copy the bundle")  # fmt: skip
        for s in self.subnetworks:
            for location in external_locations(self.path / s.file):
                if not inside(self.path, location) or location not in files:
                    raise FanEdgeError(
                        f"{self.path}: {s.file} reads weights from {location!r}, "
                        "outside the bundle's listed files; refusing to load it"
                    )

    def subnetwork_for(self, num_frames: int) -> Subnetwork:
        """The graph for `num_frames` frames: exact if exported, else the nearest."""
        return self.subnetworks[select_subnetwork(num_frames, self.frames)]

    def file(self, name: str) -> Path:
        return self.path / name
