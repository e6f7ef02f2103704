"""``spec-cnn``: the spectrogram frontend as the net's first layer, then a 2D CNN, with a sampling head.

The defaults are ``SpecCNNInverter``'s own.
"""

from __future__ import annotations

from wavinv.models.base import configure
from wavinv.models.spec_cnn import SpecCNNInverter

__all__ = ["DEFAULTS", "TINY", "build"]

DEFAULTS: dict = {}
# a network that fits toy data in a fraction of a second (the estimator contract test uses it)
TINY: dict = dict(
    channels=(4,), pool=1, frontend={"n_freq": 8, "n_frames": 8}, hidden=16, latent_dim=4, flow_hidden=16,
    flow_transforms=1, noise_scale=1.0, max_epochs=1, batch_size=64, block_size=16, n_threads=1, progress=False,
)  # fmt: skip


def build(**overrides) -> SpecCNNInverter:
    """``SpecCNNInverter`` with ``overrides`` (e.g. ``head="latent-noise"``)."""
    return configure(SpecCNNInverter, DEFAULTS, overrides)
