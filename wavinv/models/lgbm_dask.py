"""``pca-lgbm`` and ``pca-lgbm-quantile`` fitted on a Dask cluster (``wavinv fit --scheduler``).

The workers read their chunks of the train split, compute spectrograms (or take
the waveforms) and pool them; the PCA is fitted in the calling process on the
same random subset of at most ``pca_rows`` pooled rows that a local fit uses (so
it is the same PCA, up to float rounding of the spectrograms); the workers
project their rows; then one ``lightgbm.dask.DaskLGBMRegressor`` per parameter
and objective (one per quantile level for the quantile method) trains on the
rows where they lie (the pooled rows of the whole split stay in the workers'
memory until projected: 16 KB a row with the default 64 x 64 pooling). The rows
a local fit holds out from the trees (the quantile method's calibration rows,
the same ones) are gathered to the calling process, and the estimator finishes
its fit from these parts as its local ``fit`` does (recalibration map and copula).

The result is a plain ``PCALGBMRegressor`` or ``PCALGBMQuantile`` holding local
boosters: predicting, ``invert`` and joblib loading need no cluster. Distributed
LightGBM finds its histogram bins from each worker's rows, so the trees are
close to, not identical to, a local fit's, and which worker holds which rows
(hence the model) may vary between runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from ..cluster import session, shared_location, wait_for
from ..errors import InputError, StoreError
from ..store import SPLITS, Store, is_store, split_of
from .lgbm import PCALGBMQuantile, PCALGBMRegressor

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["fit_on_dask"]

log = logging.getLogger(__name__)

_TRAIN = list(SPLITS).index("train")
# settings of the cluster a booster trained on: they mean nothing to a saved model
_NETWORK_PARAMS = ("machines", "num_machines", "local_listen_port", "time_out", "tree_learner", "num_threads")


def fit_on_dask(estimator: PCALGBMRegressor | PCALGBMQuantile, store: Store, input: str, scheduler: "str | Client"):
    """Fit ``pca-lgbm`` or ``pca-lgbm-quantile`` on the store's train split on a Dask cluster.

    Returns ``estimator``, fitted through the same steps as its local ``fit``: a plain local model.
    """
    if type(estimator) not in (PCALGBMRegressor, PCALGBMQuantile):
        raise InputError(f"fitting on a Dask cluster supports methods pca-lgbm and pca-lgbm-quantile, not {type(estimator).__name__}")
    if input not in ("spectrogram", "waveform"):
        raise InputError(f"input must be spectrogram or waveform, got {input!r}")
    store.require_complete()
    lgb_params = estimator.check_settings()  # validates the hyper-parameters before any cluster work
    objectives = estimator.objectives()
    row_shape = _row_shape(store, input)
    reducer = estimator.new_reducer().set_params(progress=False)
    grid = reducer.pooled_grid(row_shape)
    layout = _Layout.of(store, estimator)
    with session(scheduler) as client:
        path = shared_location(client, str(store.location), is_store)
        token = uuid.uuid4().hex[:8]
        parts = [
            client.submit(_pooled_part, path, k, input, grid, int(estimator.batch_size), key=f"wavinv-features-{k}-{token}") for k in layout.chunks
        ]
        wait_for(parts, "features (dask)", estimator.progress)
        _fit_pca(client, reducer, parts, layout, estimator, grid)
        projected = client.map(_project, parts, reducer=client.scatter(reducer, broadcast=True, hash=False), grid=grid)
        wait_for(projected, "projection (dask)", estimator.progress)
        del parts
        trees = [client.submit(_select, f, layout.rows_of(i, True)) for i, f in enumerate(projected)]
        held = [client.submit(_select, f, layout.rows_of(i, False)) for i, f in enumerate(projected)]
        del projected
        tree_sizes = np.array([len(layout.rows_of(i, True)) for i in range(len(layout.chunks))])
        boosters = _train_boosters(client, trees, tree_sizes, reducer.n_components_, len(store.space), lgb_params, objectives, estimator)
        held_parts = client.gather(held)
    reducer.set_params(progress=estimator.progress)  # as a local fit leaves it (the workers' copy shows no bars)
    z_held = np.concatenate([z for z, _ in held_parts])
    y_held = np.concatenate([y for _, y in held_parts])
    estimator._fitted_on(row_shape, len(store.space))
    return estimator._fit_from_parts(reducer, boosters, z_held, y_held)


def _row_shape(store: Store, input: str) -> tuple[int, ...]:
    """The shape of one row of ``X``: the store's spectrogram, or its clip."""
    if input == "waveform":
        return (store.n_samples,)
    cfg = store.frontend_config
    if cfg is None:
        raise StoreError(f"{store.location} records no frontend: fit on waveforms, or locally with a frontend")
    if cfg.get("kind") == "generator":
        raise InputError(f"{store.location} is pictured by its generator's own spectrogram function: fit it locally (no --scheduler), or on waveforms")
    return (int(cfg["n_freq"]), int(cfg["n_frames"]))


@dataclass
class _Layout:
    """Where the train rows lie: rows are numbered as in a local fit (the train split in id order, which is chunk order)."""

    chunks: list[int]  # the chunks that hold train rows
    offsets: np.ndarray  # first row of each of those chunks, then the number of rows
    on_trees: np.ndarray  # (n,) bool: the rows the boosters learn from; the rest is held out

    @classmethod
    def of(cls, store: Store, estimator) -> "_Layout":
        counts = [len(_train_rows(*store.chunk_range(k))) for k in range(store.n_chunks)]
        chunks = [k for k, m in enumerate(counts) if m]
        offsets = np.concatenate([[0], np.cumsum([counts[k] for k in chunks])]).astype(np.int64)
        n = int(offsets[-1])
        if n < 2:
            raise InputError(f"{store.location}: the train split has {n} samples; generate more")
        on_trees = np.zeros(n, dtype=bool)
        on_trees[estimator.tree_rows(n)] = True
        return cls(chunks, offsets, on_trees)

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    def rows_of(self, i: int, on_trees: bool) -> np.ndarray:
        """Rows of part ``i`` (numbered within the part) that train the trees, or that are held out."""
        mask = self.on_trees[self.offsets[i] : self.offsets[i + 1]]
        return np.flatnonzero(mask if on_trees else ~mask)


def _fit_pca(client: "Client", reducer, parts: list, layout: _Layout, estimator, grid: tuple[int, ...]) -> None:
    """Fit ``reducer``'s PCA here, on the rows a local fit would pick (``FeatureReducer.fit_transform``)."""
    pca_rows = estimator.pca_rows
    picked = np.arange(layout.n)
    if pca_rows is not None and layout.n > int(pca_rows):
        picked = np.sort(np.random.default_rng(estimator.random_state).choice(layout.n, int(pca_rows), replace=False))
    part_of = np.repeat(np.arange(len(layout.chunks)), np.diff(layout.offsets))
    takes = [client.submit(_select, parts[i], picked[part_of[picked] == i] - layout.offsets[i]) for i in np.unique(part_of[picked])]
    subset = np.concatenate([x for x, _ in client.gather(takes)])
    reducer.set_params(pca_rows=None).fit(subset.reshape(len(subset), *grid))
    reducer.set_params(pca_rows=pca_rows)


# -- tasks that run on the workers ---------------------------------------------------------
def _train_rows(start: int, stop: int) -> np.ndarray:
    ids = np.arange(start, stop, dtype=np.int64)
    return ids[split_of(ids) == _TRAIN]


_FRONTENDS: dict[str, Any] = {}  # frontend modules built in this worker process


def _pooled_part(store_path: str, k: int, input: str, grid: tuple[int, ...], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The train rows of chunk ``k``: pooled inputs ``(m, prod(grid))`` and unit params ``(m, P)``.

    Runs on a worker: the same reads, spectrograms and pooling as a local fit's ``FeatureReducer``.
    """
    from .features import pool_rows

    store = Store(store_path)
    rows = _train_rows(*store.chunk_range(k))
    waves = store.read_rows("waveform", rows)
    frontend = None
    if input == "spectrogram":
        from .. import frontend as fe

        key = json.dumps(store.frontend_config, sort_keys=True)
        if key not in _FRONTENDS:
            _FRONTENDS[key] = fe.Spectrogram.from_config(store.frontend_config)
        frontend = _FRONTENDS[key]
    pooled = np.empty((len(rows), int(np.prod(grid))), dtype=np.float32)
    for a in range(0, len(rows), batch_size):
        x = waves[a : a + batch_size]
        pooled[a : a + batch_size] = pool_rows(x if frontend is None else fe.spectrogram(x, frontend), grid)
    if not np.isfinite(pooled).all():
        raise InputError(f"{store_path}: chunk {k} gives NaN or infinite inputs")
    return pooled, store.read_rows("params_unit", rows)


def _project(part: tuple[np.ndarray, np.ndarray], reducer, grid: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    pooled, y = part
    return reducer.transform(pooled.reshape(len(pooled), *grid)), y


def _select(part: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return part[0][rows], part[1][rows]


def _item(part: tuple, i: int) -> np.ndarray:
    return part[i]


# -- the boosters ------------------------------------------------------------------------
def _train_boosters(
    client: "Client", parts: list, sizes: np.ndarray, n_features: int, n_params: int, params: dict, objectives: list[dict], estimator
) -> list:
    """One ``DaskLGBMRegressor`` per (parameter, objective), parameter-major, each turned into a local booster."""
    import dask.array as da
    from lightgbm.dask import DaskLGBMRegressor

    keep = [i for i, m in enumerate(sizes) if m]  # dask arrays cannot hold empty blocks of unknown data
    Z = da.concatenate([da.from_delayed(client.submit(_item, parts[i], 0), shape=(sizes[i], n_features), dtype=np.float32) for i in keep])
    Y = da.concatenate([da.from_delayed(client.submit(_item, parts[i], 1), shape=(sizes[i], n_params), dtype=np.float64) for i in keep])
    kwargs = _sklearn_settings(params, int(estimator.n_estimators))
    boosters = []
    with tqdm(total=n_params * len(objectives), desc="boosters (dask)", unit="model", disable=not estimator.progress, leave=False) as bar:
        for j in range(n_params):
            for objective in objectives:
                # lightgbm.dask prints its progress and warns that the worker thread count overrides n_jobs
                with warnings.catch_warnings(), contextlib.redirect_stdout(_LogStream()):
                    warnings.simplefilter("ignore", UserWarning)
                    model = DaskLGBMRegressor(client=client, **kwargs, **objective).fit(Z, Y[:, j])
                booster = model.to_local().booster_
                for key in _NETWORK_PARAMS:
                    booster.params.pop(key, None)
                boosters.append(booster)
                bar.update()
    return boosters


def _sklearn_settings(params: dict, n_estimators: int) -> dict:
    """The local fit's LightGBM settings (``check_settings``), by their scikit-learn names."""
    return dict(
        n_estimators=n_estimators,
        learning_rate=params["learning_rate"],
        num_leaves=params["num_leaves"],
        min_child_samples=params["min_data_in_leaf"],
        colsample_bytree=params["feature_fraction"],
        max_bin=params["max_bin"],
        random_state=params["seed"],
        deterministic=True,
        force_col_wise=True,
        verbosity=-1,
    )


class _LogStream:
    """A stdout stand-in that sends what is printed to the debug log."""

    def write(self, text: str) -> int:
        if text.strip():
            log.debug("lightgbm: %s", text.strip())
        return len(text)

    def flush(self) -> None:
        pass
