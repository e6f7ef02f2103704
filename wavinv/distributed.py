"""Scale-out on Dask (``pip install wavinv[dask]``): generation and the LightGBM fits on a cluster.

Everything here that touches dask imports it inside a function, so ``import
wavinv`` and every local run never import dask. A ``scheduler`` is one of:

- ``"local:N"`` (``"local"``: one worker per core): a ``LocalCluster`` of N worker
  processes with one thread each, started for the call and closed after it;
- a scheduler address, ``"tcp://host:8786"`` (what ``dask scheduler`` prints);
  ``host:port`` means tcp;
- a scheduler file ``*.json`` (``dask scheduler --scheduler-file``, dask-jobqueue, dask-mpi);
- a connected ``distributed.Client``, used as is and left open.

Generation (``generate(..., scheduler=...)``): every pending chunk is one task,
``wavinv.generate.render_chunk(store, spec, k)``, which renders the chunk, writes
its data, then its completion record: the same code and the same bytes as a
local run. The calling process holds the store's lock while tasks run; tasks
write different chunks. When the run stops (an error, Ctrl-C) the tasks not yet
started are told to skip, and the chunks in flight are waited for, so once the
call returns nothing writes the store any more (a second Ctrl-C stops waiting).
Workers need the same wavinv version, the generator importable (a built-in name,
``package.module:attr``, or a ``file.py:attr`` path that every worker sees at
the same absolute path; a generator object is sent pickled), and the store at
the same absolute path (a shared filesystem) or at an fsspec URL every worker
reaches (``s3://bucket/store``, with the protocol's package installed on every
machine); both are checked before the first task. URL stores are not locked:
run one ``generate`` per store at a time.
Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which about
doubles synth100's CPU time; ``local:N`` clusters run without it (``local_cluster``),
a user's own workers only if their Dask configuration says so.

Fit (``fit_on_dask``, ``wavinv fit --scheduler``, methods ``pca-lgbm`` and
``pca-lgbm-quantile``): the workers read their chunks of the train split,
compute spectrograms (or take the waveforms) and pool them; the PCA is fitted in
the calling process on the same random subset of at most ``pca_rows`` pooled
rows that a local fit uses (so it is the same PCA, up to float rounding of the
spectrograms); the workers project their rows; then one
``lightgbm.dask.DaskLGBMRegressor`` per parameter and objective (one per quantile
level for the quantile method) trains on the rows where they lie (the pooled rows
of the whole split stay in the workers' memory until projected: 16 KB a row with
the default 64 x 64 pooling). The rows a local fit holds out from the trees (the
quantile method's calibration rows, the same ones) are gathered to the calling
process, which finishes the fit as ``fit`` does (recalibration map and copula).
The result is a plain ``PCALGBMRegressor`` or ``PCALGBMQuantile`` holding local
boosters: predicting, ``invert`` and joblib loading need no cluster. Distributed
LightGBM finds its histogram bins from each worker's rows, so the trees are
close to, not identical to, a local fit's, and which worker holds which rows
(hence the model) may vary between runs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import re
import uuid
import warnings
from concurrent.futures import CancelledError
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError, StoreError
from .generators import Generator
from .limits import cpu_count
from .location import Location
from .store import SPLITS, Store, split_of

if TYPE_CHECKING:
    from .models.lgbm import _PCALGBM
    from distributed import Client

    from .models.lgbm import PCALGBMRegressor

__all__ = ["fit_on_dask", "local_cluster", "parse_scheduler", "run_chunks", "session"]

log = logging.getLogger(__name__)

# seconds to reach a scheduler, and for at least one worker to join it
CONNECT_TIMEOUT_S = 30
WORKER_WAIT_S = 60
# seconds a stopped run waits for the chunks in flight to be written
DRAIN_TIMEOUT_S = 600
_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_HOST_PORT = re.compile(r"^\[?[\w.\-:]+\]?:\d+$")
_INSTALL = "--scheduler needs Dask: pip install 'wavinv[dask]'"
_TRAIN = list(SPLITS).index("train")
_NETWORK_PARAMS = ("machines", "num_machines", "local_listen_port", "time_out", "tree_learner", "num_threads")


def parse_scheduler(scheduler: str) -> tuple[str, Any]:
    """``("local", n_workers)``, ``("file", path)`` or ``("address", address)``; ``InputError`` if none fits."""
    text = scheduler.strip() if isinstance(scheduler, str) else ""
    if text == "local":
        return "local", cpu_count()
    if text.startswith("local:"):
        n = text[len("local:") :]
        if not n.isdigit() or int(n) < 1:
            raise InputError(f"scheduler {scheduler!r}: local:N needs N >= 1 worker processes")
        return "local", int(n)
    if text.endswith(".json"):
        if not Path(text).is_file():
            raise InputError(f"scheduler file not found: {text}")
        return "file", text
    proto, sep, rest = text.partition("://")
    if (sep and proto in _PROTOCOLS and rest) or (not sep and _HOST_PORT.match(text)):
        return "address", text
    raise InputError(
        f"scheduler must be local, local:N, a Dask scheduler address such as tcp://host:8786, "
        f"or a scheduler file (.json), got {scheduler!r}"
    )


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise InputError(_INSTALL) from None
    return distributed


@contextlib.contextmanager
def session(scheduler: "str | Client") -> Iterator["Client"]:
    """A ``distributed.Client`` for ``scheduler`` with at least one worker running this wavinv.

    A cluster or connection made here is closed on exit; a ``Client`` passed in is left open.
    """
    if not isinstance(scheduler, str):
        distributed = _import_distributed()
        if not isinstance(scheduler, distributed.Client):
            raise InputError(f"scheduler must be a string or a distributed.Client, got {type(scheduler).__name__}")
        _check_workers(scheduler)
        yield scheduler
        return
    kind, value = parse_scheduler(scheduler)
    distributed = _import_distributed()
    with contextlib.ExitStack() as stack:
        if kind == "local":
            log.info("starting a local Dask cluster of %d worker processes", value)
            stack.enter_context(_quiet("distributed"))  # closed last: the cluster logs its shutdown
            cluster = stack.enter_context(local_cluster(value))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            where = {"address": value} if kind == "address" else {"scheduler_file": value}
            try:
                client = stack.enter_context(distributed.Client(**where, timeout=CONNECT_TIMEOUT_S))
            except (OSError, TimeoutError, ValueError) as e:
                raise InputError(f"cannot reach the Dask scheduler {value}: {type(e).__name__}: {e}") from None
        _check_workers(client)
        yield client


def local_cluster(n_workers: int):
    """The ``LocalCluster`` that ``local:N`` starts: N worker processes of one thread, no dashboard.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes
    glibc map and fault in every large temporary array anew: generating synth100
    then takes about twice the CPU time (``benchmarks/dask_speed.py``). These
    workers run without it. The nanny also writes its worker settings into this process's
    environment, where later local worker processes would inherit them: they are undone.
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise InputError(f"a local cluster needs n_workers >= 1, got {n_workers!r}")
    distributed = _import_distributed()
    import dask

    before = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": ":0"},  # the HTTP server on a free port: 8787 may be taken
                silence_logs=logging.ERROR,
            )
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` while inside."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_workers(client: "Client") -> None:
    """Wait for a worker; refuse workers that lack this wavinv version."""
    address = client.scheduler.address
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise InputError(f"no Dask worker joined the scheduler {address} within {WORKER_WAIT_S} s: start workers with `dask worker {address}`") from None
    mine = importlib.metadata.version("wavinv")
    # importlib.metadata is everywhere, so this runs even where wavinv is missing
    for worker, version in client.run(importlib.metadata.version, "wavinv", on_error="return").items():
        if isinstance(version, BaseException):
            raise InputError(f"Dask worker {worker} has no wavinv ({type(version).__name__}: {version}): install wavinv[dask] {mine} on every worker")
        if version != mine:
            raise InputError(f"Dask worker {worker} runs wavinv {version}, this is wavinv {mine}: install the same version everywhere")


def _store_on_workers(client: "Client", where: str) -> str:
    """The store's location as the workers must see it, after checking that every worker does.

    A local path is made absolute (workers must mount it at the same path); a URL
    must be reachable from every worker (a ``memory://`` store is not: it lives in
    one process).
    """
    loc = Location(where)
    where = os.path.abspath(where) if loc.is_local else loc.url
    seen = client.run(_sees_store, where, on_error="return")
    blind = [w for w, ok in seen.items() if ok is not True]
    if blind:
        what = "storage every worker mounts at the same path" if loc.is_local else "a URL every worker can reach"
        raise InputError(f"Dask worker {blind[0]} cannot see {where}: put the store on {what}")
    return where


def _sees_store(where: str) -> bool:
    from .store import is_store

    return is_store(where)


def _render_task(store_path: str, generator: str | Generator, chunk_index: int, stop: str) -> int:
    """``render_chunk`` unless the run was stopped before this task started."""
    from distributed import Event

    from .generate import render_chunk

    if Event(stop).is_set():
        return 0
    return render_chunk(store_path, generator, chunk_index)


def run_chunks(client: "Client", path: str | os.PathLike, generator: str | Generator, pending: list[int], chunk: int, n: int, progress: bool = True) -> None:
    """Render the ``pending`` chunks of the store at ``path`` as tasks on ``client``'s cluster.

    ``generator`` is a spec every worker can load, or a generator object (pickled
    to the workers). The caller holds the store's lock; this returns (or raises)
    only when no task writes the store any more.
    """
    from distributed import Event, KilledWorker, as_completed
    from distributed.comm.core import CommClosedError

    path = _store_on_workers(client, str(path))
    if not isinstance(generator, str):
        generator = client.scatter(generator, broadcast=True, hash=False)
    stop = f"wavinv-stop-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(_render_task, path, generator, k, stop, key=f"wavinv-chunk-{k}-{token}") for k in pending]
    total = sum(min(n, (k + 1) * chunk) - k * chunk for k in pending)
    with tqdm(total=total, unit="clip", desc=f"generate {Location(path).name} (dask)", disable=not progress, dynamic_ncols=True) as bar:
        try:
            for fut in as_completed(futures):
                bar.update(fut.result())
        except BaseException as e:
            _drain(client, stop, futures, path)
            if isinstance(e, KilledWorker):
                raise StoreError(f"Dask workers died rendering {path} ({e}); out of memory? Finished chunks are kept: run the same command to resume") from None
            if isinstance(e, (CancelledError, CommClosedError)):
                raise StoreError(f"lost the Dask scheduler while writing {path}: finished chunks are kept; run the same command to resume") from None
            raise
        finally:
            with contextlib.suppress(Exception):
                Event(stop, client=client).clear()  # frees the event on the scheduler


def _drain(client: "Client", stop: str, futures: list, path: str) -> None:
    """Stop a run: tasks not started skip their chunk, and the chunks in flight are waited for."""
    from distributed import Event, wait

    try:
        Event(stop, client=client).set()
        log.info("stopping: waiting for the chunks in flight")
        wait(futures, timeout=DRAIN_TIMEOUT_S)
    except BaseException as e:  # a second Ctrl-C, a lost scheduler or the timeout: stop waiting
        running = sum(not f.done() for f in futures)
        if running:
            log.warning("%d chunk tasks of %s may still be running on the cluster (%s); wait for them before writing this store again", running, path, type(e).__name__)
    finally:
        client.cancel(futures)


# -- fitting ---------------------------------------------------------------------------
def _train_rows(start: int, stop: int) -> np.ndarray:
    ids = np.arange(start, stop, dtype=np.int64)
    return ids[split_of(ids) == _TRAIN]


_FRONTENDS: dict[str, Any] = {}  # frontend modules built in this worker process


def _pooled_part(store_path: str, k: int, input: str, grid: tuple[int, ...], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The train rows of chunk ``k``: pooled inputs ``(m, prod(grid))`` and unit params ``(m, P)``.

    Runs on a worker: the same reads, spectrograms and pooling as a local fit's ``FeatureReducer``.
    """
    from .models.features import pool_rows

    store = Store(store_path)
    rows = _train_rows(*store.chunk_range(k))
    waves = store.read_rows("waveform", rows)
    frontend = None
    if input == "spectrogram":
        from . import frontend as fe

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


def fit_on_dask(estimator: "_PCALGBM", store: Store, input: str, scheduler: "str | Client") -> "_PCALGBM":
    """Fit ``pca-lgbm`` or ``pca-lgbm-quantile`` on the store's train split on a Dask cluster.

    Returns ``estimator``, fitted in place through the same steps as its local
    ``fit`` (``wavinv.models.lgbm``): a plain local model. See the module docstring.
    """
    from .models.lgbm import PCALGBMQuantile, PCALGBMRegressor

    if type(estimator) not in (PCALGBMRegressor, PCALGBMQuantile):
        raise InputError(f"fitting on a Dask cluster supports methods pca-lgbm and pca-lgbm-quantile, not {type(estimator).__name__}")
    if input not in ("spectrogram", "waveform"):
        raise InputError(f"input must be spectrogram or waveform, got {input!r}")
    store.require_complete()
    lgb_params = estimator.check_settings()  # validates the hyper-parameters before any cluster work
    objectives = estimator.objectives()
    if input == "spectrogram":
        cfg = store.frontend_config
        if cfg is None:
            raise StoreError(f"{store.location} records no frontend: fit on waveforms, or locally with a frontend")
        if cfg.get("kind") == "generator":
            raise InputError(f"{store.location} is pictured by its generator's own spectrogram function: fit it locally (no --scheduler), or on waveforms")
        row_shape: tuple[int, ...] = (int(cfg["n_freq"]), int(cfg["n_frames"]))
    else:
        row_shape = (store.n_samples,)
    reducer = estimator.new_reducer().set_params(progress=False)
    grid = reducer.pooled_grid(row_shape)
    batch = int(estimator.batch_size)
    counts = [len(_train_rows(*store.chunk_range(k))) for k in range(store.n_chunks)]
    chunks = [k for k, m in enumerate(counts) if m]
    sizes = np.array([counts[k] for k in chunks])
    n = int(sizes.sum())
    if n < 2:
        raise InputError(f"{store.location}: the train split has {n} samples; generate more")
    # rows are numbered as in a local fit: the train split in id order, which is chunk order
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    on_trees = np.zeros(n, dtype=bool)
    on_trees[estimator.tree_rows(n)] = True
    part_of = np.repeat(np.arange(len(sizes)), sizes)

    with session(scheduler) as client:
        path = _store_on_workers(client, str(store.location))
        token = uuid.uuid4().hex[:8]
        parts = [client.submit(_pooled_part, path, k, input, grid, batch, key=f"wavinv-features-{k}-{token}") for k in chunks]
        _progress(parts, "features (dask)", estimator.progress)

        # the PCA: fitted here, on the rows a local fit would pick (FeatureReducer.fit_transform)
        pca_rows = estimator.pca_rows
        picked = np.arange(n)
        if pca_rows is not None and n > int(pca_rows):
            picked = np.sort(np.random.default_rng(estimator.random_state).choice(n, int(pca_rows), replace=False))
        takes = [client.submit(_select, parts[i], picked[part_of[picked] == i] - offsets[i]) for i in np.unique(part_of[picked])]
        subset = np.concatenate([x for x, _ in client.gather(takes)])
        reducer.set_params(pca_rows=None).fit(subset.reshape(len(subset), *grid))
        reducer.set_params(pca_rows=pca_rows)
        del takes, subset

        projected = client.map(_project, parts, reducer=client.scatter(reducer, broadcast=True, hash=False), grid=grid)
        _progress(projected, "projection (dask)", estimator.progress)
        del parts
        tree_parts = [client.submit(_select, f, np.flatnonzero(on_trees[a:b])) for f, a, b in zip(projected, offsets[:-1], offsets[1:])]
        tree_sizes = np.array([int(on_trees[a:b].sum()) for a, b in zip(offsets[:-1], offsets[1:])])
        held = [client.submit(_select, f, np.flatnonzero(~on_trees[a:b])) for f, a, b in zip(projected, offsets[:-1], offsets[1:])]
        del projected
        boosters = _train_boosters(
            client, tree_parts, tree_sizes, reducer.n_components_, len(store.space), lgb_params, objectives, int(estimator.n_estimators), estimator.progress
        )
        held_parts = client.gather(held)
        z_held = np.concatenate([z for z, _ in held_parts])
        y_held = np.concatenate([y for _, y in held_parts])

    reducer.set_params(progress=estimator.progress)  # as a local fit leaves it (the workers' copy shows no bars)
    estimator.input_shape_ = row_shape
    estimator.n_params_ = len(store.space)
    estimator.reducer_ = reducer
    estimator.boosters_ = boosters
    estimator.finish_fit(z_held, y_held)
    return estimator


def _progress(futures: list, desc: str, progress: bool) -> None:
    """Wait for ``futures``, with a progress bar; the first failure is raised."""
    from distributed import as_completed

    with tqdm(total=len(futures), desc=desc, unit="chunk", disable=not progress, leave=False) as bar:
        for fut in as_completed(futures):
            fut.result()
            bar.update()


def _train_boosters(
    client: "Client",
    parts: list,
    sizes: np.ndarray,
    n_features: int,
    n_params: int,
    params: dict,
    objectives: list[dict],
    n_estimators: int,
    progress: bool,
) -> list:
    """One ``DaskLGBMRegressor`` per (parameter, objective), parameter-major, each turned into a local booster."""
    import dask.array as da
    from lightgbm.dask import DaskLGBMRegressor

    keep = [i for i, m in enumerate(sizes) if m]  # dask arrays cannot hold empty blocks of unknown data
    Z = da.concatenate([da.from_delayed(client.submit(_item, parts[i], 0), shape=(sizes[i], n_features), dtype=np.float32) for i in keep])
    Y = da.concatenate([da.from_delayed(client.submit(_item, parts[i], 1), shape=(sizes[i], n_params), dtype=np.float64) for i in keep])
    # the local fit's settings (check_settings), by their scikit-learn names
    kwargs = dict(
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
    boosters = []
    with tqdm(total=n_params * len(objectives), desc="boosters (dask)", unit="model", disable=not progress, leave=False) as bar:
        for j in range(n_params):
            for objective in objectives:
                # lightgbm.dask prints its progress and warns that the worker thread count overrides n_jobs
                with warnings.catch_warnings(), contextlib.redirect_stdout(_LogStream()):
                    warnings.simplefilter("ignore", UserWarning)
                    model = DaskLGBMRegressor(client=client, **kwargs, **objective).fit(Z, Y[:, j])
                booster = model.to_local().booster_
                for key in _NETWORK_PARAMS:  # this cluster's addresses mean nothing to a saved model
                    booster.params.pop(key, None)
                boosters.append(booster)
                bar.update()
    return boosters


class _LogStream:
    """A stdout stand-in that sends what is printed to the debug log."""

    def write(self, text: str) -> int:
        if text.strip():
            log.debug("lightgbm: %s", text.strip())
        return len(text)

    def flush(self) -> None:
        pass
