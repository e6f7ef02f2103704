"""Gradient-boosted trees on PCA features: a point estimate and a sampler.

``PCALGBMRegressor`` fits one LightGBM L2 model per parameter. ``PCALGBMQuantile``
fits LightGBM quantile models at several levels per parameter and samples from
the predicted conditional quantile functions, with calibration and dependence
between parameters learnt on rows held out from the trees.

Both build the binned ``lgb.Dataset`` once and only swap its label per target:
binning is shared by every model (100 parameters x several quantiles).
Fits are reproducible, whatever ``n_jobs`` (every LightGBM model trains on one
thread with ``deterministic=True``; ``n_jobs`` models train at once).

``fit`` is made of steps that ``wavinv.models.lgbm_dask`` also runs, the middle
ones on a cluster, to return the same kind of model: ``check_settings`` (the
LightGBM parameters), ``new_reducer`` (the features), ``tree_rows`` and
``objectives`` (which rows and which objectives the boosters train on, one
booster per parameter and objective, parameter-major), ``_fitted_on`` (the
shapes) and ``_fit_from_parts``, which sets the fitted state from the reducer,
the boosters and the rows kept from the trees. Only these classes set their
fitted attributes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
from scipy.special import ndtr, ndtri
from scipy.stats import rankdata
from sklearn.covariance import ledoit_wolf
from tqdm.auto import tqdm

from ..errors import InputError
from ..limits import positive_int
from .base import Check, WavinvEstimator, as_generator, check_n_samples, fraction, n_threads, positive_number
from .features import FeatureReducer

__all__ = ["PCALGBMRegressor", "PCALGBMQuantile"]


def _share(name: str, value: Any) -> None:
    """A real number in (0, 1] (LightGBM's share of the features per tree)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0.0 < float(value) <= 1.0:
        raise InputError(f"{name} must be a number in (0, 1], got {value!r}")


def _quantile_levels(name: str, value: Any) -> np.ndarray:
    """At least two increasing levels in (0, 1), as an array."""
    try:
        taus = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        taus = np.empty(0)
    if taus.ndim != 1 or len(taus) < 2 or not (np.all(taus > 0) and np.all(taus < 1) and np.all(np.diff(taus) > 0)):
        raise InputError(f"{name} must be at least two increasing levels in (0, 1), got {value!r}")
    return taus


class _PCALGBM(WavinvEstimator):
    """Shared parts: the feature reduction, the shared Dataset, the booster loop."""

    _checks: ClassVar[dict[str, Check]] = {
        name: positive_int for name in ("n_estimators", "num_leaves", "min_child_samples", "max_bin")
    } | {"learning_rate": positive_number, "feature_fraction": _share}

    def new_reducer(self) -> FeatureReducer:
        """An unfitted ``FeatureReducer`` with this estimator's feature settings."""
        return FeatureReducer(
            n_components=self.n_components,
            pool_shape=self.pool_shape,
            pca_rows=self.pca_rows,
            batch_size=self.batch_size,
            random_state=self.random_state,
            progress=self.progress,
        )

    def check_settings(self) -> dict:
        """Validate the hyper-parameters (``check_hyper_parameters``); the LightGBM parameters every booster shares."""
        self.check_hyper_parameters()
        seed = 0 if self.random_state is None else int(self.random_state)
        return {
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "min_data_in_leaf": int(self.min_child_samples),
            "feature_fraction": float(self.feature_fraction),
            "max_bin": int(self.max_bin),
            "num_threads": 1,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }

    def train_boosters(self, z: np.ndarray, targets: np.ndarray, objectives: list[dict], desc: str) -> list[lgb.Booster]:
        """One booster per (target column, objective), target-major order.

        Each model trains on one thread and ``n_jobs`` models train at once, one
        Dataset per worker (bin boundaries computed once and shared through
        ``reference``; only the label changes per target). Measured on 2 busy
        cores, one LightGBM call with 2 OpenMP threads ran 7x slower than with
        one; and results do not depend on ``n_jobs``.
        """
        params = self.check_settings()
        n_targets, n_obj = targets.shape[1], len(objectives)
        workers = min(n_threads(self.n_jobs), n_targets)
        first = lgb.Dataset(z, label=targets[:, 0], params=params, free_raw_data=False).construct()
        datasets = [first] + [
            lgb.Dataset(z, label=targets[:, 0], params=params, reference=first, free_raw_data=False).construct()
            for _ in range(workers - 1)
        ]
        boosters: list = [None] * (n_targets * n_obj)
        bar = tqdm(total=len(boosters), desc=desc, unit="model", disable=not self.progress, leave=False)

        def work(w: int) -> None:
            for j in range(w, n_targets, workers):
                datasets[w].set_label(targets[:, j])
                for i, objective in enumerate(objectives):
                    boosters[j * n_obj + i] = lgb.train({**params, **objective}, datasets[w], num_boost_round=int(self.n_estimators))
                    bar.update()

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(workers)))
        bar.close()
        return boosters

    def fit(self, X, y):
        X, y = self._check_fit_inputs(X, y)
        self.check_settings()
        objectives = self.objectives()
        rows = self.tree_rows(len(y))
        reducer = self.new_reducer()
        z = reducer.fit_transform(X)
        boosters = self.train_boosters(z[rows], y[rows], objectives, self._kind)
        held = np.setdiff1d(np.arange(len(y)), rows)
        return self._fit_from_parts(reducer, boosters, z[held], y[held])

    def _fit_from_parts(self, reducer: FeatureReducer, boosters: list, z_held: np.ndarray, y_held: np.ndarray):
        """The fitted state, once ``_fitted_on`` has recorded the shapes, from a fitted ``reducer``, the
        ``boosters`` (``objectives`` order, parameter-major) and the held-out rows' features ``z_held``
        and unit-scaled parameters ``y_held``."""
        self.reducer_ = reducer
        self.boosters_ = boosters
        self._finish_fit(z_held, y_held)
        return self

    def objectives(self) -> list[dict]:
        """The LightGBM objectives of each parameter's boosters (validating their settings)."""
        raise NotImplementedError

    def tree_rows(self, n: int) -> np.ndarray:
        """Sorted indices of the training rows the boosters learn from (the rest is held out)."""
        return np.arange(n)

    def _finish_fit(self, z_held: np.ndarray, y_held: np.ndarray) -> None:
        """Last step of ``fit`` once ``boosters_`` are set: learn from the held-out rows' features."""

    def _predict_z(self, z: np.ndarray) -> np.ndarray:
        """``(N, len(boosters_))`` raw predictions from features ``z``; boosters run
        one thread each, in parallel only for batches big enough to pay for it."""

        def one(booster: lgb.Booster) -> np.ndarray:
            return booster.predict(z, num_threads=1)

        workers = n_threads(self.n_jobs) if len(z) >= 64 else 1
        if workers == 1:
            return np.stack([one(b) for b in self.boosters_], axis=1)
        with ThreadPoolExecutor(workers) as pool:
            return np.stack(list(pool.map(one, self.boosters_)), axis=1)

    def _predict_boosters(self, X) -> np.ndarray:
        X = self._check_X(X)
        return self._predict_z(self.reducer_.transform(X))


class PCALGBMRegressor(_PCALGBM):
    """PCA features, then one LightGBM L2 regressor per parameter (a point estimate).

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, max_bin,
    feature_fraction : LightGBM boosting rounds and tree settings, shared by
        every parameter's model.
    n_components, pool_shape, pca_rows, batch_size : the feature reduction
        (see ``FeatureReducer``).
    n_jobs : models trained (and predicted) at once (None: all cores).
    random_state : seed of the PCA and LightGBM.
    progress : progress bars.

    ``sample`` repeats the point estimate: this method has no spread.
    """

    def __init__(
        self,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        max_bin: int = 63,
        feature_fraction: float = 1.0,
        n_components: int = 64,
        pool_shape: tuple[int, int] = (64, 64),
        pca_rows: int | None = 8192,
        batch_size: int = 256,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        progress: bool = True,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_bin = max_bin
        self.feature_fraction = feature_fraction
        self.n_components = n_components
        self.pool_shape = pool_shape
        self.pca_rows = pca_rows
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    _kind: ClassVar[str] = "pca-lgbm"

    def objectives(self) -> list[dict]:
        return [{"objective": "regression"}]

    def predict(self, X) -> np.ndarray:
        return self._predictions(self._predict_unit(X))

    def _predict_unit(self, X) -> np.ndarray:
        return np.clip(self._predict_boosters(X), 0.0, 1.0)

    def sample(self, X, n_samples: int, random_state=None) -> np.ndarray:
        n_samples = check_n_samples(n_samples)
        return self._from_unit(np.repeat(self._predict_unit(X)[:, None, :], n_samples, axis=1))


# --- quantile functions: q_ext (..., Q + 2) holds the values at levels taus_ext
# (0, quantiles..., 1); between levels the quantile function is linear.


def _extend(q: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Sorted quantiles ``(..., Q)`` -> ``(..., Q + 2)`` with the end values at levels
    0 and 1 extrapolated from the outer segments, clipped to [0, 1]."""
    q = np.clip(np.sort(q, axis=-1), 0.0, 1.0)  # sorting repairs crossing
    lo_slope = (q[..., 1] - q[..., 0]) / (taus[1] - taus[0])
    hi_slope = (q[..., -1] - q[..., -2]) / (taus[-1] - taus[-2])
    q0 = np.clip(q[..., 0] - taus[0] * lo_slope, 0.0, 1.0)
    q1 = np.clip(q[..., -1] + (1.0 - taus[-1]) * hi_slope, 0.0, 1.0)
    return np.concatenate([q0[..., None], q, q1[..., None]], axis=-1)


def _quantile(q_ext: np.ndarray, taus_ext: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Values of the quantile functions ``q_ext (..., Q + 2)`` at levels ``u (..., S)``."""
    seg = np.clip(np.searchsorted(taus_ext, u, side="right") - 1, 0, len(taus_ext) - 2)
    t0, t1 = taus_ext[seg], taus_ext[seg + 1]
    v0 = np.take_along_axis(q_ext, seg, axis=-1)
    v1 = np.take_along_axis(q_ext, seg + 1, axis=-1)
    return v0 + (u - t0) / (t1 - t0) * (v1 - v0)


def _cdf(q_ext: np.ndarray, taus_ext: np.ndarray, y: np.ndarray, strict: bool) -> np.ndarray:
    """CDF of the quantile functions at ``y (...)``: right limit, or the left limit
    when ``strict`` (they differ where the quantile function is flat: an atom)."""
    y = y[..., None]
    below = (q_ext < y) if strict else (q_ext <= y)
    k = below.sum(axis=-1) - 1
    last = len(taus_ext) - 1
    kk = np.clip(k, 0, last - 1)[..., None]
    v0 = np.take_along_axis(q_ext, kk, axis=-1)[..., 0]
    v1 = np.take_along_axis(q_ext, kk + 1, axis=-1)[..., 0]
    t0, t1 = taus_ext[kk[..., 0]], taus_ext[kk[..., 0] + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = t0 + (y[..., 0] - v0) / (v1 - v0) * (t1 - t0)
    return np.where(k < 0, 0.0, np.where(k >= last, 1.0, inside))


class PCALGBMQuantile(_PCALGBM):
    """Conditional quantile sampling: LightGBM quantile models per parameter.

    For each parameter, one LightGBM quantile model per level in ``quantiles``
    predicts the conditional quantile function, linear between levels (crossing
    repaired by sorting) and extrapolated linearly into the tails, clipped to
    [0, 1]. A fraction ``calibration_fraction`` of the training rows is kept away
    from the trees; on it, the PIT values ``u = F(y_true | x)`` of every parameter
    give (1) a recalibration map per parameter (the empirical quantiles of ``u``)
    and (2) a Gaussian copula (Ledoit-Wolf correlation of the normal scores of the
    ranks of ``u``), which restores dependence between parameters.

    ``sample`` draws correlated normals -> uniforms (copula) -> recalibrated
    levels -> parameter values by the predicted quantile functions.
    ``predict`` is the (recalibrated) conditional median.

    Parameters
    ----------
    quantiles : the levels fitted per parameter (at least two, in (0, 1)).
    calibration_fraction : share of training rows held out for the calibration
        map and the copula; 0 fits the trees on every row and samples the
        parameters independently without recalibration.
    n_estimators, learning_rate, num_leaves, min_child_samples, max_bin,
    feature_fraction, n_components, pool_shape, pca_rows, batch_size, n_jobs,
    random_state, progress : as in ``PCALGBMRegressor``.
    """

    def __init__(
        self,
        quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95),
        calibration_fraction: float = 0.2,
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        max_bin: int = 63,
        feature_fraction: float = 1.0,
        n_components: int = 64,
        pool_shape: tuple[int, int] = (64, 64),
        pca_rows: int | None = 8192,
        batch_size: int = 256,
        n_jobs: int | None = None,
        random_state: int | None = 0,
        progress: bool = True,
    ):
        self.quantiles = quantiles
        self.calibration_fraction = calibration_fraction
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_bin = max_bin
        self.feature_fraction = feature_fraction
        self.n_components = n_components
        self.pool_shape = pool_shape
        self.pca_rows = pca_rows
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    _GRID = np.linspace(0.0, 1.0, 101)  # levels of the recalibration map

    _kind: ClassVar[str] = "pca-lgbm-quantile"
    _checks: ClassVar[dict[str, Check]] = _PCALGBM._checks | {"quantiles": _quantile_levels, "calibration_fraction": fraction}

    def objectives(self) -> list[dict]:
        taus = _quantile_levels("quantiles", self.quantiles)
        self.quantiles_ = taus
        self.taus_ext_ = np.concatenate([[0.0], taus, [1.0]])
        return [{"objective": "quantile", "alpha": float(t)} for t in taus]

    def tree_rows(self, n: int) -> np.ndarray:
        """All rows but a random ``calibration_fraction`` of them (seeded by ``random_state``)."""
        n_cal = int(round(float(self.calibration_fraction) * n))
        if self.calibration_fraction > 0 and not 2 <= n_cal <= n - 2:
            raise InputError(f"calibration_fraction={self.calibration_fraction} leaves too few rows of {n} for calibration or training")
        return np.sort(as_generator(self.random_state).permutation(n)[n_cal:])

    def _finish_fit(self, z_held: np.ndarray, y_held: np.ndarray) -> None:
        """The recalibration map and the copula, from the PIT values of the held-out rows."""
        p = self.n_params_
        n_cal = len(y_held)
        if n_cal == 0:
            self.recalibration_ = np.repeat(self._GRID[:, None], p, axis=1)
            self.copula_chol_ = np.eye(p)
            return
        q_ext = self._quantile_fns(self._predict_z(z_held))
        lo = _cdf(q_ext, self.taus_ext_, y_held, strict=True)
        hi = _cdf(q_ext, self.taus_ext_, y_held, strict=False)
        # Randomised PIT: uniform within an atom of the predicted distribution.
        rng = np.random.default_rng([0 if self.random_state is None else int(self.random_state), 1])
        pit = lo + rng.random(lo.shape) * (hi - lo)
        self.recalibration_ = np.quantile(pit, self._GRID, axis=0)
        scores = ndtri(rankdata(pit, axis=0) / (n_cal + 1))
        cov = ledoit_wolf(scores)[0]
        sd = np.sqrt(np.diag(cov))
        sd[sd == 0] = 1.0
        corr = cov / np.outer(sd, sd)
        np.fill_diagonal(corr, 1.0)
        self.copula_chol_ = np.linalg.cholesky(corr + 1e-9 * np.eye(p))

    def _quantile_fns(self, raw: np.ndarray) -> np.ndarray:
        return _extend(raw.reshape(len(raw), self.n_params_, len(self.quantiles_)), self.quantiles_)

    def predict_quantiles(self, X) -> np.ndarray:
        """Predicted quantile functions ``(N, P, Q + 2)`` at levels ``taus_ext_``
        (before recalibration)."""
        return self._from_unit(self._unit_quantiles(X), axis=1)

    def _unit_quantiles(self, X) -> np.ndarray:
        return self._quantile_fns(self._predict_boosters(X))

    def _recalibrate(self, v: np.ndarray) -> np.ndarray:
        """Uniform levels ``v (N, P, S)`` -> PIT levels of the held-out rows."""
        pos = v * (len(self._GRID) - 1)
        i = np.clip(np.floor(pos).astype(np.int64), 0, len(self._GRID) - 2)
        frac = pos - i
        cols = np.arange(self.n_params_)[None, :, None]
        return self.recalibration_[i, cols] * (1 - frac) + self.recalibration_[i + 1, cols] * frac

    def predict(self, X) -> np.ndarray:
        q_ext = self._unit_quantiles(X)
        u = self._recalibrate(np.full((len(q_ext), self.n_params_, 1), 0.5))
        return self._predictions(np.clip(_quantile(q_ext, self.taus_ext_, u)[..., 0], 0.0, 1.0))

    def sample(self, X, n_samples: int, random_state=None) -> np.ndarray:
        q_ext = self._unit_quantiles(X)
        n_samples = check_n_samples(n_samples)
        rng = as_generator(random_state)
        out = np.empty((len(q_ext), n_samples, self.n_params_))
        # A few rows at a time: the temporaries are several times the output's size.
        step = max(1, 2**20 // (n_samples * self.n_params_))
        for a in range(0, len(q_ext), step):
            normals = rng.standard_normal((len(q_ext[a : a + step]), n_samples, self.n_params_)) @ self.copula_chol_.T
            u = self._recalibrate(ndtr(normals).transpose(0, 2, 1))
            out[a : a + step] = _quantile(q_ext[a : a + step], self.taus_ext_, u).transpose(0, 2, 1)
        return self._from_unit(np.clip(out, 0.0, 1.0))
