"""``conv1d``: a 1D convolutional net on the raw waveform (or on spectrogram rows), with a sampling head.

The defaults are ``Conv1dInverter``'s own; ``benchmarks/neural_speed.py`` measured
its first layer's cost/resolution trade-off.
"""

from __future__ import annotations

from wavinv.models.base import configure
from wavinv.models.conv1d import Conv1dInverter

__all__ = ["DEFAULTS", "TINY", "build"]

DEFAULTS: dict = {}
# a network that fits toy data in a fraction of a second (the estimator contract test uses it)
TINY: dict = dict(
    channels=(4, 8), first_kernel=8, first_stride=4, hidden=16, latent_dim=4, flow_hidden=16, flow_transforms=1,
    noise_scale=1.0, max_epochs=1, batch_size=64, block_size=16, n_threads=1, progress=False,
)  # fmt: skip


def build(**overrides) -> Conv1dInverter:
    """``Conv1dInverter`` with ``overrides`` (e.g. ``head="latent-noise"``)."""
    return configure(Conv1dInverter, DEFAULTS, overrides)
