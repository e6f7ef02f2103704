"""``sbi-npe``: the peer a user would pick instead, sbi's NPE with a CNN embedding of the spectrogram (1D for a waveform).

A MAF flow (4 transforms, 64 hidden units) conditioned on a 64-feature CNN
embedding of the 64 x 64 pooled spectrogram (or of 4,096 pooled samples), trained by sbi with its own early
stopping (10 epochs without a better validation loss, at most 100). Needs the
optional extra: ``pip install 'wavinv[peers]'``.
"""

from __future__ import annotations

from wavinv.models.base import configure
from wavinv.models.npe import NPESampler

__all__ = ["DEFAULTS", "TINY", "build"]

DEFAULTS: dict = dict(pool_shape=(64, 64), hidden_features=64, num_transforms=4, embedding_features=64, max_epochs=100, stop_after_epochs=10)
TINY: dict = dict(pool_shape=(8, 8), hidden_features=8, num_transforms=1, embedding_features=4, max_epochs=1, stop_after_epochs=1, batch_size=64, n_threads=1, progress=False)


def build(**overrides) -> NPESampler:
    return configure(NPESampler, DEFAULTS, overrides)
