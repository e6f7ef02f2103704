"""What the neural inverters (``conv1d``, ``spec-cnn``) share, split by role.

- ``estimator``: ``NeuralInverter``, the one estimator; concrete classes plug in an encoder.
- ``net``: ``InverterNet``, the encoder with its point head and optional flow head.
- ``loader``: ``BlockLoader``, training data read in blocks, shuffled, read ahead.
- ``training``: the training loop (knobs apart from the architecture), checkpoints and resumption.
- ``calibration``: the sampling heads' noise scales, calibrated for coverage@80.
"""

from .estimator import NeuralInverter, check_channels
from .loader import BlockLoader
from .net import HEADS, InverterNet

__all__ = ["NeuralInverter"]
