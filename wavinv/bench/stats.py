"""Bootstrap statistics for the bench table: means with percentile intervals, paired by shared resamples.

Every row of a table is scored on the same targets, so drawing the resamples
once (``boot_indices``) and using them for every row makes the interval of a
difference between two rows a paired one. Imports nothing else of the bench.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["bootstrap_ci"]  # the rest is imported by name (wavinv.bench re-exports it)

N_BOOT = 1000
LEVEL = 0.95


def boot_indices(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` resampling indices; the same for every row, so differences are paired."""
    return np.random.default_rng(np.random.SeedSequence([seed, n, n_boot])).integers(0, n, size=(n_boot, n))


def bootstrap_ci(values, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0, indices: np.ndarray | None = None) -> tuple[float, float, float]:
    """Mean of ``values`` and the percentile bootstrap interval of the mean: ``(mean, lo, hi)``."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise InputError(f"bootstrap_ci needs a non-empty 1-D array, got shape {x.shape}")
    if indices is None:
        indices = boot_indices(len(x), n_boot, seed)
    means = x[indices].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean()), float(lo), float(hi)


def gap_closed(chance: np.ndarray, floor: np.ndarray, values: np.ndarray, idx: np.ndarray, start: np.ndarray | None = None) -> tuple[float, float, float]:
    """(mean chance - mean row) / (mean chance - mean floor), with its paired bootstrap interval.

    With ``start`` (another row's per-target values), (mean start - mean row) / (mean chance - mean
    floor) instead: how much more of the gap the row closes than that one, on the same scale and
    resamples.

    A ratio of means, not a mean of per-target ratios: on a target whose chance
    level is about its floor (a noisy sound that random patches match as well as
    the same patch with other noise) a per-target ratio divides by ~0 and swings
    the mean by itself.
    """

    start = chance if start is None else start

    def ratio(rows: np.ndarray) -> np.ndarray:
        span = chance[rows].mean(axis=-1) - floor[rows].mean(axis=-1)
        return (start[rows].mean(axis=-1) - values[rows].mean(axis=-1)) / np.where(span > 0, span, np.nan)

    point = float(ratio(np.arange(len(chance))))
    lo, hi = np.nanquantile(ratio(idx), [(1 - LEVEL) / 2, (1 + LEVEL) / 2]) if np.isfinite(point) else (np.nan, np.nan)
    return point, float(lo), float(hi)

