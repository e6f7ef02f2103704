"""Look it up: the parameters of the nearest training examples."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ..limits import positive_int
from .base import Check, WavinvEstimator, as_generator, check_n_samples, n_threads, one_of
from .features import FeatureReducer

__all__ = ["KNNSampler"]


class KNNSampler(WavinvEstimator):
    """Nearest training examples in PCA feature space; samples are their parameters.

    Parameters
    ----------
    n_neighbors : ``k``, how many nearest training examples a target draws from
        (capped by the training size; the value used is ``n_neighbors_``).
    weights : ``"uniform"`` or ``"distance"`` (probability ``1 / distance``).
    n_components, pool_shape, whiten, pca_rows, batch_size : the feature
        reduction (see ``FeatureReducer``).
    n_jobs : threads for the neighbour search (None: all cores).
    random_state : seed of the feature reduction.
    progress : progress bars while reading ``X``.

    ``sample`` draws ``n_samples`` of the ``k`` neighbours *without* replacement
    when ``n_samples <= k`` (so the candidates are distinct training examples),
    with replacement otherwise; with ``weights="distance"`` closer neighbours are
    likelier (Gumbel top-k without replacement). ``predict`` is the (weighted)
    mean of the neighbours' parameters.
    """

    _kind: ClassVar[str] = "knn"
    _checks: ClassVar[dict[str, Check]] = {"n_neighbors": positive_int, "weights": one_of(("uniform", "distance"))}

    def __init__(
        self,
        n_neighbors: int = 16,
        weights: str = "uniform",
        n_components: int = 32,
        pool_shape: tuple[int, int] = (64, 64),
        whiten: bool = False,
        pca_rows: int | None = 8192,
        batch_size: int = 256,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        progress: bool = True,
    ):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.n_components = n_components
        self.pool_shape = pool_shape
        self.whiten = whiten
        self.pca_rows = pca_rows
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    def fit(self, X, y) -> "KNNSampler":
        X, y = self._check_fit_inputs(X, y)
        self.check_hyper_parameters()
        self.reducer_ = FeatureReducer(
            n_components=self.n_components,
            pool_shape=self.pool_shape,
            whiten=self.whiten,
            pca_rows=self.pca_rows,
            batch_size=self.batch_size,
            random_state=self.random_state,
            progress=self.progress,
        )
        z = self.reducer_.fit_transform(X)
        self.n_neighbors_ = min(int(self.n_neighbors), len(z))
        self.index_ = NearestNeighbors(n_neighbors=self.n_neighbors_, n_jobs=n_threads(self.n_jobs)).fit(z)
        self.y_train_ = y  # unit-scaled (see ``WavinvEstimator``)
        return self

    def _neighbours(self, X) -> tuple[np.ndarray, np.ndarray]:
        X = self._check_X(X)
        dist, idx = self.index_.kneighbors(self.reducer_.transform(X))
        return dist, idx

    def _weights(self, dist: np.ndarray) -> np.ndarray:
        if self.weights == "uniform":
            return np.full(dist.shape, 1.0 / dist.shape[1])
        w = 1.0 / np.maximum(dist, 1e-12 * max(float(dist.max()), 1e-12))
        return w / w.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        dist, idx = self._neighbours(X)
        w = self._weights(dist)
        return self._predictions(np.einsum("nk,nkp->np", w, self.y_train_[idx]))

    def sample(self, X, n_samples: int, random_state=None) -> np.ndarray:
        dist, idx = self._neighbours(X)
        n_samples = check_n_samples(n_samples)
        rng = as_generator(random_state)
        w = self._weights(dist)
        n, k = idx.shape
        if n_samples <= k:
            # Gumbel top-k: the n_samples largest log(w) + Gumbel noise are a
            # weighted draw without replacement (uniform when w is constant).
            keys = np.log(w) + rng.gumbel(size=(n, k))
            pick = np.argsort(-keys, axis=1, kind="stable")[:, :n_samples]
        else:
            cdf = np.cumsum(w, axis=1)
            u = rng.random((n, n_samples)) * cdf[:, -1:]
            pick = np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(axis=2), k - 1)
        return self._from_unit(self.y_train_[np.take_along_axis(idx, pick, axis=1)])
