"""The sounds a bench inverts: the store's held-out test clips, or patches drawn from the prior outside the store.

``test`` (the default): a prefix of one fixed permutation of the test split, so
asking for more targets later keeps the first ones (and their saved results).
``prior``: patches drawn uniformly on the unit scale, one seed per target from
the bench seed (again a prefix), rendered by the generator: sounds no fit has
seen, from no store at all. Either may be rendered with another noise seed
(``noise_seed``) than the store's default render, for a generator that takes one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..generators import render_checked, takes_seed
from ..limits import int_arg
from ..store import Store

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

# one logger for the whole package: its lines read "wavinv.bench: ..." wherever they come from
log = logging.getLogger(__package__)

TARGET_SOURCES = ("test", "prior")
# separates the streams of the targets' draws from every other use of the bench seed
_TEST_ORDER, _PRIOR_DRAWS = 7, 11


@dataclass
class BenchTargets:
    """The targets, in bench order: ``ids`` key their records (store rows, or draw numbers for the prior)."""

    source: str
    noise_seed: int | None
    ids: np.ndarray  # (N,) int
    params: np.ndarray  # (N, P) natural units
    params_unit: np.ndarray  # (N, P)
    waves: np.ndarray  # (N, n_samples) float32

    def label(self, j: int) -> str:
        """The ``j``-th target as titles name it."""
        return f"{'test id' if self.source == 'test' else 'prior draw'} {int(self.ids[j])}"

    def describe(self) -> str:
        """Where the targets come from and how they sound, for the results page."""
        where = "from the store's test split" if self.source == "test" else "drawn from the parameter prior, outside the store"
        noise = "its default render" if self.noise_seed is None else f"rendered with noise seed {self.noise_seed}"
        return f"{len(self.ids)} {where}, each {noise}"


def target_options(source: Any, noise_seed: Any) -> tuple[str, int | None]:
    """Where targets come from and their noise seed, checked (``InputError`` otherwise)."""
    if source not in TARGET_SOURCES:
        raise InputError(f"--targets-from {source!r}: expected {' or '.join(TARGET_SOURCES)}")
    return source, None if noise_seed is None else int_arg("--target-noise-seed", noise_seed, 0)


def require_seed(gen, noise_seed: int | None) -> None:
    """Refuse a target noise seed for a generator whose render takes none."""
    if noise_seed is not None and not takes_seed(gen):
        raise InputError(f"--target-noise-seed {noise_seed}: the generator {gen.name} takes no noise seed")


def pick_targets(store: Store, gen, source: str, noise_seed: int | None, count: int, seed: int) -> BenchTargets:
    """``count`` targets from ``source`` (``TARGET_SOURCES``), rendered with ``noise_seed`` where given."""
    require_seed(gen, noise_seed)
    if source == "test":
        test_idx = store.split_indices("test")
        if len(test_idx) == 0:
            raise InputError(f"{store.location}: the test split is empty; generate more samples")
        if count > len(test_idx):
            log.warning("%s has %d test clips; using all of them, not %d", store.location, len(test_idx), count)
        positions = np.random.default_rng(np.random.SeedSequence([seed, _TEST_ORDER])).permutation(len(test_idx))[:count]
        params, params_unit = store.params("test")[positions], store.params_unit("test")[positions]
        waves = np.asarray(store.waveforms("test")[positions]) if noise_seed is None else None
        ids = test_idx[positions]
    else:
        space = store.space
        params_unit = np.stack([np.random.default_rng(np.random.SeedSequence([seed, _PRIOR_DRAWS, i])).random(len(space)) for i in range(count)])
        params = space.from_unit(params_unit)
        params_unit = space.to_unit(params)  # a choice's unit value is its level's, as a store records it
        waves, ids = None, np.arange(count)
    if waves is None:
        waves = render_checked(gen, params, seed=noise_seed)
    return BenchTargets(source, noise_seed, np.asarray(ids, dtype=np.int64), params, params_unit, waves)
