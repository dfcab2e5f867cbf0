"""The torch-free runtime: load a bundle, pick a sub-network for a budget, classify videos.

Needs only numpy, OpenCV, PyAV and an inference engine (ONNX Runtime, or TensorRT on a GPU).
"""

from fan_edge.runtime.budget import Budget, Choice, choose_subnetwork, parse_budget
from fan_edge.runtime.predictor import Prediction, Predictor

__all__ = ["Budget", "Choice", "Prediction", "Predictor", "choose_subnetwork", "parse_budget"]
