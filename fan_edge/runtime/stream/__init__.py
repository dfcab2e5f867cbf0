"""Live video: cameras, network streams and files played as they come (`fan-edge stream`).

    source --capture thread--> ring of model-sized frames --windows--> network --> results
                                                     controller <-- latency per window

`sources` opens the input; `capture` reads it in its own thread into a ring buffer that
never waits for inference; `session` cuts windows from the ring, classifies and smooths
them; `controller` changes the frame count per window under a latency budget; `annotate`
writes the video with the labels drawn on it. `Predictor.stream(source, ...)` is the API.
"""

from fan_edge.runtime.stream.controller import Controller, Decision
from fan_edge.runtime.stream.session import Stream, StreamResult, StreamSummary, parse_seconds
from fan_edge.runtime.stream.sources import open_live

__all__ = [
    "Controller",
    "Decision",
    "Stream",
    "StreamResult",
    "StreamSummary",
    "open_live",
    "parse_seconds",
]
