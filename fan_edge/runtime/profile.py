"""Latency profiles: measured per device and backend by `fan-edge bench`, stored in the bundle.

`latency.json` sits beside the manifest (it is measured on the device, so it is not part of
the hashed, exported files). A profile is keyed by device, backend and precision; a profile
of another device or backend is never used silently.
"""

import json
import os
import platform
from pathlib import Path

from fan_edge.bundle import Bundle
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import write_json

PROFILE_FILE = "latency.json"


def device_name(backend: str) -> str:
    """CPU model for CPU backends; GPU name for CUDA/TensorRT ones (via nvidia-smi if present)."""
    if backend == "ort-cpu":
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
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    return "unknown GPU"


def profile_key(device: str, backend: str, precision: str = "fp32") -> str:
    return f"{device} | {backend} | {precision}"


def read_profiles(bundle: Bundle) -> dict:
    path = bundle.path / PROFILE_FILE
    if not path.is_file():
        return {}
    try:
        profiles = json.loads(path.read_bytes()).get("profiles", {})
        for p in profiles.values():
            for v in p["subnetworks"].values():
                float(v["p50_ms"])
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError,
            ValueError):  # fmt: skip
        raise FanEdgeError(f"{path} is damaged: delete it and re-run `fan-edge bench`") from None
    return profiles


def write_profile(bundle: Bundle, key: str, profile: dict) -> Path:
    profiles = read_profiles(bundle)
    profiles[key] = profile
    path = bundle.path / PROFILE_FILE
    write_json(path, {"schema_version": 1, "profiles": profiles})
    return path


def latency_for(bundle: Bundle, backend: str, precision: str = "fp32") -> dict[int, float]:
    """p50 latency (ms) per frame count for this device and backend, or a clear error."""
    profile = profile_for(bundle, backend, precision)
    return {int(n): float(v["p50_ms"]) for n, v in profile["subnetworks"].items()}


def decode_costs_for(bundle: Bundle, backend: str, precision: str = "fp32") -> dict:
    """This device's decode cost models ({"codecs": {codec: coefficients}, ...})."""
    decode = profile_for(bundle, backend, precision).get("decode")
    try:
        for coef in decode["codecs"].values():
            [float(c) for c in coef]
        float(decode["preprocess_ms_per_frame"])
    except (TypeError, KeyError, ValueError, AttributeError):
        raise FanEdgeError(f"the latency profile of {bundle.path} has no decode costs (an older "
                           f"`fan-edge bench` made it): re-run `fan-edge bench {bundle.path} "
                           "--backend " + backend + "`, or pass --budget-for network") from None
    return decode


def profile_for(bundle: Bundle, backend: str, precision: str = "fp32") -> dict:
    """The profile measured on this device with `backend`, or a clear error."""
    profiles = read_profiles(bundle)
    key = profile_key(device_name(backend), backend, precision)
    if key in profiles:
        return profiles[key]
    if profiles:
        have = "; ".join(profiles)
        raise FanEdgeError(f"no latency profile for [{key}] (the bundle has [{have}], measured "
                           f"elsewhere): run `fan-edge bench {bundle.path} --backend {backend}` "
                           "on this device")  # fmt: skip
    raise FanEdgeError(f"a latency budget needs a latency profile: run `fan-edge bench "
                       f"{bundle.path} --backend {backend}` once on this device")  # fmt: skip
