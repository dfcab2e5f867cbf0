"""One copy of the weights several built graphs hold byte for byte (int8 or fp16 graphs
of one bundle: their sub-networks differ in norms and alterations, not in convolutions)."""

import hashlib
from pathlib import Path

WEIGHTS = "weights.bin"
SHARE_MIN_BYTES = 256  # smaller tensors (zero points, short scale vectors) stay inline
ALIGN = 64


def share_weights(models: dict[str, object], folder: Path) -> bool:
    """Move every large initializer that more than one graph holds, byte for byte under the
    same name, into one `weights.bin` (each stored once); write the graphs into `folder`.
    Returns whether anything was shared."""
    import onnx
    from onnx.external_data_helper import set_external_data

    def key(t) -> tuple:
        return (t.name, t.data_type, tuple(t.dims), hashlib.sha256(t.raw_data).digest())

    count: dict[tuple, int] = {}
    for m in models.values():
        for t in m.graph.initializer:
            if t.HasField("raw_data") and len(t.raw_data) >= SHARE_MIN_BYTES:
                count[key(t)] = count.get(key(t), 0) + 1
    offsets: dict[tuple, tuple[int, int]] = {}
    with open(folder / WEIGHTS, "wb") as f:
        for m in models.values():
            for t in m.graph.initializer:
                if not t.HasField("raw_data") or count.get(key(t), 0) < 2:
                    continue
                k = key(t)
                if k not in offsets:
                    f.write(b"\0" * (-f.tell() % ALIGN))
                    offsets[k] = (f.tell(), len(t.raw_data))
                    f.write(t.raw_data)
                set_external_data(t, WEIGHTS, offset=offsets[k][0], length=offsets[k][1])
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL
    if not offsets:
        (folder / WEIGHTS).unlink()
    for name, m in models.items():
        onnx.save_model(m, str(folder / name))
    return bool(offsets)
