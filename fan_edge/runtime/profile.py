"""Latency profiles: measured per device and settings by `fan-edge bench`, stored in the bundle.

`latency.json` sits beside the manifest (it is measured on the device, so it is not part of
the hashed, exported files). A profile is keyed by everything that changes latency: device,
backend, precision, batch, threads and input size. A profile measured under another key is
never used: `bench --batch 64` writes its own entry and `run` (batch 1) never reads it.
Every value is checked on read (a damaged file is one error naming the file, never a wrong
choice), and writers hold a lock on the bundle folder across the read-modify-write, so
concurrent `bench` runs cannot lose each other's profiles.
"""

import contextlib
import os
import platform
from collections.abc import Iterable
from pathlib import Path

from fan_edge.bundle import MAX_SIZE, Bundle, Fields, field_name, read_json
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import check_output_file, locked, write_json
from fan_edge.runtime.decode_cost import FEATURES
from fan_edge.runtime.video.clips import bench_codec

PROFILE_FILE = "latency.json"
# 2: keyed by batch, threads and input size too. Version-1 files (keyed "device | backend |
# precision") cannot say which batch or threads they measured, and a batch-64 profile read
# as batch 1 is exactly the wrong decision they caused, so they are not used: a lookup asks
# to re-run `fan-edge bench`, and the next `bench` replaces the file.
PROFILE_VERSION = 2
FIX = "delete it and re-run `fan-edge bench`"
KEY_FIELDS = ("device", "backend", "precision", "batch", "threads", "size")


def device_name(backend: str) -> str:
    """CPU model for CPU backends; GPU name for CUDA/TensorRT ones (via nvidia-smi if present)."""
    from fan_edge.runtime.backends import BACKENDS

    if BACKENDS[backend].device == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
        except OSError:
            pass
        return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    return "unknown GPU"


def default_threads() -> int:
    """The intra-op threads ONNX Runtime uses when not told (backends/ort.py sets them only when
    asked): one per physical core of the machine. Measured with onnxruntime 1.32, which
    ignores the process's CPU affinity, so neither do we."""
    cores = set()
    for topology in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        with contextlib.suppress(OSError):
            cores.add(
                (
                    (topology / "physical_package_id").read_text().strip(),
                    (topology / "core_id").read_text().strip(),
                )
            )
    return len(cores) or os.cpu_count() or 1


def profile_key(
    device: str, backend: str, precision: str = "fp32", *, batch: int = 1, threads: int, size: int
) -> str:
    return f"{device} | {backend} | {precision} | batch {batch} | {threads} threads | {size} px"


def key_of(profile: dict) -> str:
    """The key a profile is stored under: from its own fields."""
    return profile_key(
        *(profile[k] for k in KEY_FIELDS[:3]), **{k: profile[k] for k in KEY_FIELDS[3:]}
    )


def this_key(
    bundle: Bundle,
    backend: str,
    precision: str = "fp32",
    *,
    batch: int = 1,
    threads: int | None = None,
) -> str:
    """The key of a profile measured here, with these settings (`threads` None: the default)."""
    return profile_key(
        device_name(backend),
        backend,
        precision,
        batch=batch,
        threads=threads or default_threads(),
        size=bundle.input["size"],
    )


def _check_stats(c: Fields, stats: dict, at: str) -> None:
    p50, p90, p99 = (c.number(stats, f"{q}_ms", at, positive=True) for q in ("p50", "p90", "p99"))
    c.integer(stats, "runs", at, 1)
    if not p50 <= p90 <= p99:
        c.fail(at, f"has percentiles out of order (p50 {p50:g}, p90 {p90:g}, p99 {p99:g} ms)")


def _check_decode(c: Fields, decode: dict, at: str) -> None:
    # Another fan-edge's cost model (other feature names) is not damage: the profile's
    # latencies stay usable, and `decode_costs_for` asks for a new `bench` before pricing.
    features = c.items(decode, "features", at)
    if not features or not all(isinstance(f, str) for f in features):
        c.fail(f"{at}.features", "must be a list of feature names")
    codecs = c.mapping(decode, "codecs", at)
    if not codecs:
        c.fail(f"{at}.codecs", "is empty")
    for codec in codecs:
        c.items(codecs, codec, f"{at}.codecs", length=len(features))
        for i in range(len(features)):  # a non-negative least-squares fit
            c.number(codecs[codec], i, field_name(f"{at}.codecs", codec))
    c.number(decode, "preprocess_ms_per_frame", at)
    if "fit_max_rel_error" in decode:
        errors = c.mapping(decode, "fit_max_rel_error", at)
        for codec in errors:
            c.number(errors, codec, f"{at}.fit_max_rel_error")
    if decode.get("short_side") is not None:  # None: frames read as stored
        c.integer(decode, "short_side", at, 1, MAX_SIZE)


def check_profile(c: Fields, profiles: dict, key, frames: tuple[int, ...]) -> None:
    """One entry of latency.json: every field the runtime reads, typed and in range."""
    at = field_name("profiles", key)
    p = c.mapping(profiles, key, "profiles")
    for k in KEY_FIELDS[:3]:
        c.text(p, k, at)
    c.integer(p, "batch", at, 1)
    c.integer(p, "threads", at, 1)
    c.integer(p, "size", at, 1, MAX_SIZE)
    if key != key_of(p):
        c.fail(at, f"is stored under another key than its fields say ({key_of(p)})")
    subnetworks = c.mapping(p, "subnetworks", at)
    if not subnetworks:
        c.fail(f"{at}.subnetworks", "is empty")
    counts = {str(n) for n in frames}
    for n in subnetworks:
        sat = field_name(f"{at}.subnetworks", n)
        if n not in counts:
            c.fail(sat, f"is not a frame count of this bundle ({', '.join(sorted(counts))})")
        record = c.mapping(subnetworks, n, f"{at}.subnetworks")
        _check_stats(c, record, sat)
        if "with_decode" in record:
            _check_stats(c, c.mapping(record, "with_decode", sat), f"{sat}.with_decode")
        for k in ("clips_per_s", "frames_per_s", "gflops"):
            if k in record:
                c.number(record, k, sat, positive=True)
    if "peak_rss_mb" in p:
        c.number(p, "peak_rss_mb", at)
    if "decode" in p:
        _check_decode(c, c.mapping(p, "decode", at), f"{at}.decode")


def _load(bundle: Bundle, *, old_ok: bool = False) -> dict:
    """The checked profiles of latency.json ({} if there is none). A version-1 file is an
    error, or with `old_ok` (a writer about to replace it) no profiles."""
    path = bundle.path / PROFILE_FILE
    if not path.is_file():
        return {}
    doc = read_json(path, FIX)
    c = Fields(path, FIX)
    if not isinstance(doc, dict):
        c.fail("the file", "must be a JSON object")
    version = c.get(doc, "schema_version")
    if type(version) is int and version == 1:
        if old_ok:
            return {}
        raise FanEdgeError(
            f"{path} was written by an older fan-edge (its profiles do not say "
            "which batch, threads and input size they measured): re-run "
            f"`fan-edge bench {bundle.path}`"
        )
    if type(version) is int and version > PROFILE_VERSION:
        raise FanEdgeError(
            f"{path} was written by a newer fan-edge (profile schema {version}): "
            f"upgrade fan-edge, or {FIX}"
        )
    c.integer(doc, "schema_version", "", PROFILE_VERSION, PROFILE_VERSION)
    profiles = c.mapping(doc, "profiles")
    for key in profiles:
        check_profile(c, profiles, key, bundle.frames)
    return profiles


def read_profiles(bundle: Bundle) -> dict:
    """{key: profile} of the bundle's latency.json, every value checked."""
    return _load(bundle)


def check_profiles_writable(bundle: Bundle) -> Path:
    """Before minutes of timing: latency.json can be read (or replaced) and written."""
    _load(bundle, old_ok=True)
    return check_output_file(bundle.path / PROFILE_FILE, "latency profile")


def write_profile(bundle: Bundle, profile: dict) -> Path:
    """Store `profile` under its key (from its device, backend, precision, batch, threads and
    size fields), keeping every other key. Concurrent writers are serialized by a lock."""
    path = bundle.path / PROFILE_FILE
    new = Fields(path, "not saved (a fan-edge bug: please report it)")
    for k in KEY_FIELDS:
        new.get(profile, k, "profile")
    key = key_of(profile)
    check_profile(new, {key: profile}, key, bundle.frames)
    with locked(bundle.path, "writing a latency profile", wait=True):
        profiles = _load(bundle, old_ok=True)
        profiles[key] = profile
        write_json(path, {"schema_version": PROFILE_VERSION, "profiles": profiles})
    return path


def bench_command(
    bundle: Bundle,
    backend: str,
    *,
    batch: int = 1,
    threads: int | None = None,
    codecs: Iterable[str] = (),
) -> str:
    """The `fan-edge bench` that measures what a lookup with these settings reads (it
    measures every precision the backend runs, so precision needs no flag), and the decode
    cost of `codecs` as decoders name them (default: h264 alone)."""
    command = f"fan-edge bench {bundle.path} --backend {backend}"
    command += f" --batch {batch}" if batch != 1 else ""
    command += f" --threads {threads}" if threads else ""
    keys = sorted({k for k in map(bench_codec, codecs) if k})
    return command + "".join(f" --codec {k}" for k in keys if keys != ["h264"])


def profile_for(
    bundle: Bundle,
    backend: str,
    precision: str = "fp32",
    *,
    batch: int = 1,
    threads: int | None = None,
) -> dict:
    """The profile measured on this device with these settings, or a clear error."""
    profiles = read_profiles(bundle)
    key = this_key(bundle, backend, precision, batch=batch, threads=threads)
    if key in profiles:
        return profiles[key]
    command = bench_command(bundle, backend, batch=batch, threads=threads)
    if profiles:
        have = "; ".join(profiles)
        raise FanEdgeError(
            f"no latency profile for [{key}] (the bundle has [{have}], measured "
            f"elsewhere or with other settings): run `{command}` on this "
            "device"
        )
    raise FanEdgeError(
        f"a latency budget needs a latency profile: run `{command}` once on this device"
    )


def latency_for(
    bundle: Bundle,
    backend: str,
    precision: str = "fp32",
    *,
    batch: int = 1,
    threads: int | None = None,
) -> dict[int, float]:
    """p50 latency (ms) per frame count for this device and settings, or a clear error."""
    profile = profile_for(bundle, backend, precision, batch=batch, threads=threads)
    return {int(n): float(v["p50_ms"]) for n, v in profile["subnetworks"].items()}


def decode_costs_for(
    bundle: Bundle, backend: str, precision: str = "fp32", *, threads: int | None = None
) -> dict:
    """This device's decode cost models ({"codecs": {codec: coefficients}, ...})."""
    decode = profile_for(bundle, backend, precision, threads=threads).get("decode")
    codecs = (decode or {}).get("codecs", {})  # measure again what was measured
    command = f"re-run `{bench_command(bundle, backend, threads=threads, codecs=codecs)}`"
    if decode is None:
        raise FanEdgeError(
            f"the latency profile of {bundle.path} has no decode costs (`fan-edge "
            f"bench --no-decode` made it): {command}, or pass --budget-for network"
        )
    if decode["features"] != list(FEATURES):
        raise FanEdgeError(
            f"the decode costs in {bundle.path / PROFILE_FILE} were fitted by another "
            f"version of fan-edge (another cost model): {command}, or pass --budget-for network"
        )
    return decode
