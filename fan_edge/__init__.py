"""fan-edge: Frame Adaptive Networks, from one training run to any frame count on the edge.

Importing the package is cheap and never imports torch: the runtime must work on a device
that has only numpy, OpenCV and an inference engine.
"""

from fan_edge.errors import FanEdgeError
from fan_edge.frames import select_subnetwork

__version__ = "0.1.0"
__all__ = ["FanEdgeError", "select_subnetwork", "__version__"]
