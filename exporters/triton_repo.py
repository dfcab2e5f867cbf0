"""A Triton Inference Server model repository from a bundle, for a GPU Triton of your own.

    fan-edge build BUNDLE --target triton-repo --repo REPO [--max-batch 16] [--fp16]
    tritonserver --model-repository REPO

REPO/fan_4f, fan_8f, ...: one model per sub-network, Triton's onnxruntime backend with the
TensorRT execution accelerator (fp16 with `--fp16`), dynamic batching, one instance on each
GPU; input `clip` (T, 3, S, S) float32 after a batch dimension, output `logits`. Their shared
weights are one file on disk: the graphs keep reading `weights.bin` beside them, and every
model's `weights.bin` is a hard link to the first (a copy only where the file system cannot
link). REPO/fan: the router, a Python-backend (BLS) model that picks the sub-network for a
clip of any length and an optional budget (frames or GFLOPs; latency needs a device profile
Triton does not have) and calls that model (exporters/triton_router_model.py; two instances,
each calling synchronously). The same
models and router as `fan-edge serve`, without PyTriton.

Written beside REPO and moved into place when complete. Verified here: each config parses as
Triton's ModelConfig message, each model's graph and weights run in ONNX Runtime to the
bundle's logits, the links, and the router's choices (its code run with a stand-in for
Triton's Python backend). Not verified here: loading it in a Triton server with the
onnxruntime and python backends (PyTriton's server ships neither; no GPU).
"""

import json
import os
import shutil
from pathlib import Path

from exporters.registry import register_target
from fan_edge.bundle import Bundle
from fan_edge.errors import FanEdgeError
from fan_edge.fileio import atomic_dir

ROUTER = "fan"
ROUTER_CODE = Path(__file__).with_name("triton_router_model.py")
ROUTER_DATA = "fan_router.json"
MAX_BATCH = 16
BATCH_DELAY_US = 2000


def model_name(frames: int) -> str:
    return f"fan_{frames}f"


def subnetwork_config(bundle: Bundle, sub, max_batch: int, fp16: bool) -> str:
    size, classes = bundle.input["size"], len(bundle.classes)
    precision = "FP16" if fp16 else "FP32"
    # one TensorRT engine for every batch size the batcher forms (else a larger batch
    # rebuilds it mid-serving), cached beside the model
    shape = f"{sub.frames}x3x{size}x{size}"
    profile = {
        "trt_profile_min_shapes": f"clip:1x{shape}",
        "trt_profile_opt_shapes": f"clip:{max_batch}x{shape}",
        "trt_profile_max_shapes": f"clip:{max_batch}x{shape}",
    }
    extra = "".join(
        f'\n        parameters {{ key: "{k}" value: "{v}" }}' for k, v in profile.items()
    )
    return f"""name: "{model_name(sub.frames)}"
backend: "onnxruntime"
max_batch_size: {max_batch}
input [
  {{ name: "clip" data_type: TYPE_FP32 dims: [ {sub.frames}, 3, {size}, {size} ] }}
]
output [
  {{ name: "logits" data_type: TYPE_FP32 dims: [ {classes} ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: {BATCH_DELAY_US} }}
instance_group [ {{ count: 1 kind: KIND_GPU }} ]
optimization {{
  execution_accelerators {{
    gpu_execution_accelerator: [
      {{
        name: "tensorrt"
        parameters {{ key: "precision_mode" value: "{precision}" }}
        parameters {{ key: "max_workspace_size_bytes" value: "1073741824" }}
        parameters {{ key: "trt_engine_cache_enable" value: "1" }}
        parameters {{ key: "trt_engine_cache_path" value: "/tmp/fan-edge-trt-cache" }}{extra}
      }}
    ]
  }}
}}
"""


def router_config(bundle: Bundle) -> str:
    size, classes = bundle.input["size"], len(bundle.classes)
    return f"""name: "{ROUTER}"
backend: "python"
max_batch_size: 0
input [
  {{ name: "clip" data_type: TYPE_FP32 dims: [ -1, 3, {size}, {size} ] }},
  {{ name: "budget" data_type: TYPE_STRING dims: [ 1 ] optional: true }}
]
output [
  {{ name: "label" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "probs" data_type: TYPE_FP32 dims: [ {classes} ] }},
  {{ name: "frames" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "subnetwork" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "reason" data_type: TYPE_STRING dims: [ 1 ] }}
]
instance_group [ {{ count: 2 kind: KIND_CPU }} ]
"""


def router_data(bundle: Bundle) -> dict:
    return {
        "classes": list(bundle.classes),
        "subnetworks": [
            {"frames": s.frames, "trained_frames": s.trained_frames, "gflops": s.gflops}
            for s in bundle.subnetworks
        ],
    }


def _link_or_copy(first: Path, to: Path) -> str:
    try:
        os.link(first, to)
        return "link"
    except OSError:
        shutil.copyfile(first, to)
        return "copy"


def write_repository(bundle: Bundle, repo: Path, max_batch: int, fp16: bool) -> Path:
    weights = bundle.manifest.get("weights_file")
    with atomic_dir(repo, kind="Triton model repository", inputs=[bundle.path]) as tmp:
        first = None
        for sub in bundle.subnetworks:
            version = tmp / model_name(sub.frames) / "1"
            version.mkdir(parents=True)
            shutil.copyfile(bundle.file(sub.file), version / "model.onnx")
            if weights:  # the graph reads it by this name, beside itself
                if first is None:
                    first = version / weights
                    shutil.copyfile(bundle.file(weights), first)
                else:
                    _link_or_copy(first, version / weights)
            config = subnetwork_config(bundle, sub, max_batch, fp16)
            (version.parent / "config.pbtxt").write_text(config)
        router = tmp / ROUTER / "1"
        router.mkdir(parents=True)
        shutil.copyfile(ROUTER_CODE, router / "model.py")
        (router / ROUTER_DATA).write_text(json.dumps(router_data(bundle), indent=1))
        (router.parent / "config.pbtxt").write_text(router_config(bundle))
    return Path(repo)


def check_options(*, fold: bool = False, repo=None, max_batch=None, fp16: bool = False) -> None:
    if repo is None:
        raise FanEdgeError("--target triton-repo writes a folder of its own: give --repo REPO")


@register_target(
    "triton-repo",
    options=("repo", "max_batch", "fp16"),
    external=True,
    check=check_options,
    verified_here=False,
    description="a Triton model repository (onnxruntime + TensorRT accelerator, BLS router) "
    "in --repo",
)
def build_repository(
    bundle: Bundle, *, repo: str | Path, max_batch: int | None = None, fp16: bool = False
) -> Path:
    return write_repository(bundle, Path(repo), max_batch or MAX_BATCH, fp16)
