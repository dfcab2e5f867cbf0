"""The client side: `fan-edge run --server URL` decodes and preprocesses here and sends each
clip to the server's model for the chosen sub-network (`fan_8f`, ...), through tritonclient
over HTTP (`http://host:8000` or `host:8000`) or gRPC (`grpc://host:8001`)."""

from dataclasses import dataclass

import numpy as np

from fan_edge.errors import FanEdgeError
from fan_edge.serve.triton import model_name


def connect(url: str):
    """A tritonclient client for `url`, checked live; a one-line error otherwise."""
    try:
        if url.startswith("grpc://"):
            import tritonclient.grpc as client
        else:
            import tritonclient.http as client
    except ImportError:
        raise FanEdgeError("--server needs tritonclient: pip install 'fan-edge[serve]'") from None
    address = url.split("://", 1)[-1].rstrip("/")
    try:
        c = client.InferenceServerClient(address)
        live = c.is_server_live()
    except Exception as e:  # tritonclient raises its own and socket errors alike
        raise FanEdgeError(f"cannot reach the server at {url}: {e}") from None
    if not live:
        raise FanEdgeError(f"the server at {url} is not live")
    return client, c


@dataclass
class RemoteEngine:
    """An engine whose sub-networks run on a fan-edge server (the same bundle served)."""

    url: str

    def __post_init__(self):
        self._module, self._client = connect(self.url)
        self.name = f"triton {self.url}"

    def load(self, bundle, sub):
        model = model_name(sub.frames)
        if not self._client.is_model_ready(model):
            raise FanEdgeError(
                f"the server at {self.url} has no ready model {model}: is it serving this "
                "bundle (`fan-edge serve BUNDLE`)?"
            )

        meta = self._client.get_model_metadata(model)
        shape = meta["outputs"][0]["shape"] if isinstance(meta, dict) else meta.outputs[0].shape
        if int(shape[-1]) != len(bundle.classes):
            raise FanEdgeError(
                f"the server's {model} has {shape[-1]} classes, this bundle "
                f"{len(bundle.classes)}: serve this bundle, or pass the bundle it serves"
            )

        def run(x: np.ndarray) -> np.ndarray:
            inp = self._module.InferInput("clip", list(x.shape), "FP32")
            inp.set_data_from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            try:
                result = self._client.infer(model, [inp])
            except Exception as e:
                raise FanEdgeError(f"the server at {self.url} refused {model}: {e}") from None
            return result.as_numpy("logits")

        return run
