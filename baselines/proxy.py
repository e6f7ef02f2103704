"""``proxy``: the nearest training examples moved by gradient search through a learnt proxy of the generator."""

from __future__ import annotations

from wavinv.models.base import configure
from wavinv.models.proxy import ProxySearch

__all__ = ["DEFAULTS", "TINY", "build"]

# Few steps on purpose: the longer the search runs through the proxy, the more it exploits the proxy's errors.
# The settings of benchmarks/results/proxy-synth100 and proxy-torchsynth.
DEFAULTS: dict = dict(n_components=128, pool_shape=(64, 64), hidden=512, depth=3, residual=True, n_freqs=2, max_epochs=20, n_starts=128,
                      steps=50, step_size=0.02, rounds=4, keep=8, correction_steps=(10, 30, 60), adapt_steps=50, adapt_rate=5e-5)
TINY: dict = dict(n_components=4, hidden=16, depth=1, max_epochs=2, batch_size=32, n_starts=8, steps=5, keep=2, correction_steps=(2,), n_threads=1, progress=False)


def build(**overrides) -> ProxySearch:
    return configure(ProxySearch, DEFAULTS, overrides)
