"""Input reduction for the classical estimators: average pooling, then PCA.

Spectrogram rows ``(F, T)`` are average-pooled to at most ``pool_shape`` (a
coarse spectral envelope over time). Waveform rows ``(T,)`` stay raw samples: the
benchmark compares inputs, so the waveform path gets no hand-made spectral
features; only rows longer than ``max_features`` are block-averaged to fit.
The pooled rows go through a randomized PCA fitted on at most ``pca_rows`` of
them (measured on 2 cores: 5-20x faster than ``IncrementalPCA``, whose per-chunk
SVDs dominate, and no less accurate on the leading components).

Memory: ``X`` is read once, batch by batch; the pooled rows are kept
(``N x pooled size`` float32: 20,000 spectrograms pooled to 64 x 64 are 330 MB),
never the full ``X``.

An ``X`` that offers ``pooled(grid)`` (a store's spectrograms, ``pictures.Pictures``)
may hand over rows already pooled to that grid, read from the store's feature
cache: then no spectrogram is computed at all. The cache holds exactly what
``pool_rows`` makes of the same spectrograms, so the fit is the same.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ..errors import InputError
from ..lazy import iter_batches
from ..limits import positive_int

__all__ = ["FeatureReducer"]

log = logging.getLogger(__name__)


def _pool_axis(x: np.ndarray, axis: int, out: int) -> np.ndarray:
    n = x.shape[axis]
    if out >= n:
        return x
    if n % out == 0:
        # Summing whole contiguous blocks is ~4x faster than reduceat on big batches.
        shape = x.shape[:axis] + (out, n // out) + x.shape[axis + 1 :]
        return x.reshape(shape).sum(axis=axis + 1) / np.float32(n // out)
    starts = (np.arange(out) * n) // out
    counts = np.diff(np.append(starts, n)).astype(x.dtype)
    bshape = [1] * x.ndim
    bshape[axis] = out
    return np.add.reduceat(x, starts, axis=axis) / counts.reshape(bshape)


def pool_rows(x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """Average-pool each row of ``x`` (``(B, *row)``) to at most ``out_shape``.

    Each output cell is the mean of a contiguous block of nearly equal size;
    axes already no larger than the target are left alone.
    """
    x = np.asarray(x, dtype=np.float32)
    for i, out in enumerate(out_shape):
        x = _pool_axis(x, i + 1, int(out))
    return x.reshape(len(x), -1)


def pooled_grid(row_shape: tuple[int, ...], pool_shape: tuple[int, int], max_features: int) -> tuple[int, ...]:
    """What one row of shape ``row_shape`` pools to: at most ``pool_shape`` for
    spectrograms ``(F, T)``, at most ``max_features`` samples for waveforms ``(T,)``."""
    if len(row_shape) == 2:
        if len(pool_shape) != 2:
            raise InputError(f"pool_shape must be two positive integers, got {pool_shape!r}")
        return tuple(min(positive_int("pool_shape", p), n) for p, n in zip(pool_shape, row_shape))
    return (min(row_shape[0], positive_int("max_features", max_features)),)


def iter_pooled(X, grid: tuple[int, ...], batch_size: int, progress: bool = False, desc: str = "pooling"):
    """``(row indices, pooled rows (B, prod(grid)))`` of ``X`` (numpy or lazy), one batch at a time.

    Rows come from ``X.pooled(grid)`` when ``X`` has it and it gives them (a feature cache).
    """
    cached = X.pooled(tuple(grid)) if callable(getattr(X, "pooled", None)) and len(grid) == 2 else None
    if cached is not None:
        X, desc = cached, f"{desc} (cached)"
    bar = tqdm(total=len(X), desc=desc, unit="row", disable=not progress, leave=False)
    for idx, rows in iter_batches(X, int(batch_size)):
        pooled = rows if cached is not None else pool_rows(rows, grid)
        if not np.isfinite(pooled).all():
            raise InputError("X contains NaN or infinite values")
        bar.update(len(idx))
        yield idx, pooled
    bar.close()


def pool_all(X, grid: tuple[int, ...], batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Every row of ``X`` pooled to ``grid``: ``(N, prod(grid))`` float32, reading ``X`` batch by batch."""
    pooled = np.empty((len(X), int(np.prod(grid))), dtype=np.float32)
    for idx, rows in iter_pooled(X, grid, batch_size, progress):
        pooled[idx] = rows
    return pooled


class FeatureReducer(TransformerMixin, BaseEstimator):
    """Pool and project rows of ``X`` to ``n_components`` PCA features.

    Parameters
    ----------
    n_components : number of PCA components (capped by the number of rows and
        pooled features; the value used is ``n_components_``).
    pool_shape : ``(F, T)`` grid spectrogram rows are averaged down to.
    max_features : waveform rows longer than this are block-averaged to fit.
    whiten : scale every component to unit variance (else components keep their
        variance, so Euclidean distances approximate those between pooled rows).
    pca_rows : the PCA is fitted on a random subset of at most this many rows
        (None: all); every row is then projected.
    batch_size : rows read from ``X`` at a time.
    random_state : seed of the row subset and of the randomized SVD.
    progress : show a progress bar while reading ``X``.
    """

    def __init__(
        self,
        n_components: int = 128,
        pool_shape: tuple[int, int] = (64, 64),
        max_features: int = 16384,
        whiten: bool = False,
        pca_rows: int | None = 8192,
        batch_size: int = 256,
        random_state: int | None = 0,
        progress: bool = False,
    ):
        self.n_components = n_components
        self.pool_shape = pool_shape
        self.max_features = max_features
        self.whiten = whiten
        self.pca_rows = pca_rows
        self.batch_size = batch_size
        self.random_state = random_state
        self.progress = progress

    def pooled_grid(self, row_shape: tuple[int, ...]) -> tuple[int, ...]:
        return pooled_grid(row_shape, self.pool_shape, self.max_features)

    def _batches(self, X, desc: str):
        return iter_pooled(X, self.grid_, self.batch_size, self.progress, desc)

    def fit(self, X, y=None) -> "FeatureReducer":
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit on ``X`` (read once) and return its features ``(N, n_components_)``."""
        for name in ("batch_size", "n_components", "max_features"):
            positive_int(name, getattr(self, name))
        if self.pca_rows is not None and positive_int("pca_rows", self.pca_rows) < 2:
            raise InputError(f"pca_rows must be None or at least 2, got {self.pca_rows!r}")
        n = len(X)
        self.grid_ = self.pooled_grid(tuple(X.shape[1:]))
        pooled = pool_all(X, self.grid_, int(self.batch_size), self.progress)
        fit_n = n if self.pca_rows is None else min(n, int(self.pca_rows))
        self.n_components_ = min(int(self.n_components), fit_n, pooled.shape[1])
        if self.n_components_ < int(self.n_components):
            log.info("n_components capped at %d by the data size", self.n_components_)
        fit_rows = pooled
        if self.pca_rows is not None and n > int(self.pca_rows):
            rng = np.random.default_rng(self.random_state)
            fit_rows = pooled[np.sort(rng.choice(n, int(self.pca_rows), replace=False))]
        self.pca_ = PCA(self.n_components_, svd_solver="randomized", random_state=self.random_state).fit(fit_rows)
        self.scale_ = (
            np.sqrt(np.maximum(self.pca_.explained_variance_, 1e-12)).astype(np.float32)
            if self.whiten
            else np.ones(self.n_components_, dtype=np.float32)
        )
        # In slices: PCA.transform copies its input to centre it.
        z = np.empty((n, self.n_components_), dtype=np.float32)
        for a in range(0, n, 4096):
            z[a : a + 4096] = self.pca_.transform(pooled[a : a + 4096]) / self.scale_
        return z

    def transform_exact(self, X) -> np.ndarray:
        """``transform`` in float64: rounded to float32 by the caller, the same bytes in any process
        (a float32 projection differs in its last bit with the arrays' alignment and the BLAS threads),
        for estimators whose output moves continuously with the features."""
        check_is_fitted(self)
        out = np.empty((len(X), self.n_components_), dtype=np.float64)
        for idx, rows in self._batches(X, "features"):
            out[idx] = self.project_exact(rows)
        return out

    def project_exact(self, pooled: np.ndarray) -> np.ndarray:
        """Rows already pooled to ``grid_`` ``(B, prod(grid_))`` -> their features in float64 (``transform_exact``)."""
        components = self.pca_.components_.T.astype(np.float64) / self.scale_.astype(np.float64)
        return (np.asarray(pooled, dtype=np.float64) - self.pca_.mean_) @ components

    def transform(self, X) -> np.ndarray:
        """Features ``(N, n_components_)`` of ``X``, read batch by batch."""
        check_is_fitted(self)
        out = np.empty((len(X), self.n_components_), dtype=np.float32)
        for idx, rows in self._batches(X, "features"):
            out[idx] = self.pca_.transform(rows) / self.scale_
        return out
