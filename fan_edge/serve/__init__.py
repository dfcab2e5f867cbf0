"""Serving past one device: a bundle on Triton Inference Server.

`triton.py`: `fan-edge serve` through PyTriton (a model per sub-network with Triton's dynamic
batching, and the `fan` router); `route.py`: the router's rule, pure; `client.py`: the client
side of `fan-edge run --server`. A model repository for a Triton of your own (onnxruntime and
TensorRT backends) is a build target: exporters/triton_repo.py. Optional extra:
`pip install 'fan-edge[serve]'`; nothing here imports PyTriton until a server starts.
"""
