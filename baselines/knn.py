"""``knn``: the parameters of the nearest training examples (look it up).

Defaults, measured on synth100 (6,000 training clips, 512 x 512 spectrograms,
2,000 held out):

- ``n_neighbors=16``: re-rendering the 16 nearest neighbours of 100 targets gave
  a best-of-16 LSD of 8.07 dB (median 8.98), against 8.20 for 16 drawn from the
  32 nearest, 8.41 from the 64 nearest, and 11.34 (median 21.35) for the prior.
- ``n_components=32``, no whitening, 64 x 64 pooling: 16, 64 and 128 components
  and 32 x 32 pooling gave the same neighbours' parameter error to 0.1%;
  whitening made it worse from 64 components on.
"""

from __future__ import annotations

from wavinv.models.base import configure
from wavinv.models.knn import KNNSampler

__all__ = ["DEFAULTS", "TINY", "build"]

DEFAULTS: dict = dict(n_neighbors=16, weights="uniform", n_components=32, pool_shape=(64, 64), whiten=False)
TINY: dict = dict(n_neighbors=3, n_components=4, n_jobs=1, progress=False)


def build(**overrides) -> KNNSampler:
    return configure(KNNSampler, DEFAULTS, overrides)
