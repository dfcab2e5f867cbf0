"""Data: sampling (pure functions), video decoding, the synthetic benchmark, dataset readers.

Only `fan_edge.data.datasets` imports torch; the rest is shared with the torch-free runtime.
"""
