"""Writing a dataset store: render chunk by chunk, resumably, in parallel processes.

``generate`` checks everything it can before it writes anything (the generator
loads, its identity, seed and sampling match an existing store, a probe render is
finite and well shaped), so a refused run leaves an existing store as it was.
Then each pending chunk is made by ``rendered_chunk`` (sample the chunk's
parameters, addressable by id, and render) and written by ``Store.write_chunk``
(every array's chunk, and only then the chunk's completion record);
``render_chunk`` does both as one task for worker processes and Dask. Bytes
depend only on (generator, seed, n): never on the number of workers, the order
chunks finish in, or interruptions.

Feature caches (``store.FeatureCache``): every chunk rendered also writes its
pooled features into each cache the store holds, computed from the clips just
rendered, and ``cache_features`` adds or finishes a cache from the stored clips
(or re-rendered ones, in a store without waveforms). Either way a cache chunk is
``pool_rows(spectrogram(clips))`` of that chunk's float32 clips: the same bytes
whichever way, with however many workers, after however many interruptions.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError, StoreError, WavinvError
from .generators import Generator, generator_file, generator_identity, load_generator, portable_spec, render_checked
from .limits import int_arg, require_disk
from .location import Location
from .outputs import remove_stale, temp_name
from .params import SAMPLINGS
from .store import (
    create_layout,
    create_local_layout,
    FEATURES_DTYPE,
    FORMAT,
    FORMAT_VERSION,
    FORMAT_VERSION_NO_WAVEFORMS,
    SPLITS,
    WAVEFORM_DTYPE,
    FeatureCache,
    Store,
    compressed_nbytes,
    default_chunk,
    features_digest,
    index_memory_problem,
    is_store,
    same_generator,
    writer_lock,
)

__all__ = ["DEFAULT_POOL", "cache_features", "generate"]

log = logging.getLogger(__name__)

# rows rendered by the probe that runs before anything is written
_PROBE_ROWS = 2
# generators loaded in this process, by spec (worker processes render many chunks)
_LOADED: dict[str, Generator] = {}
# the grid ``generate(cache_features=True)`` pools to: the one every classical recipe reads (baselines/)
DEFAULT_POOL = (64, 64)


def generate(
    out: str | os.PathLike,
    generator: str | Generator,
    n: int,
    seed: int = 0,
    sampling: str = "uniform",
    chunk: int | None = None,
    workers: int = 1,
    progress: bool = True,
    scheduler: Any = None,
    cache_features: bool = False,
    waveforms: bool = True,
) -> Store:
    """Render ``n`` samples of ``generator`` into the store ``out``; resume or grow it if it exists.

    ``generator`` is a spec for ``load_generator`` or a generator object (an
    object cannot be sent to worker processes: it needs ``workers=1``; Dask
    workers get it pickled).
    ``out`` is a directory or an fsspec URL (``wavinv.location``).
    ``chunk`` is samples per chunk (default: ~8 MiB of waveform). ``scheduler``
    renders the chunks as tasks on a Dask cluster instead of local processes
    (``"local:N"``, ``"tcp://host:8786"``, a ``distributed.Client``: see
    ``wavinv.cluster``), with the same bytes. ``cache_features`` adds the
    store's picture pooled to ``DEFAULT_POOL`` as a feature cache (``cache_features()``
    for other grids). ``waveforms=False`` keeps no clips (format version 2; the
    generator re-renders them when asked) and implies ``cache_features``; resuming
    a store needs the same ``waveforms``. Returns the store opened for reading.
    """
    plan = (out, generator, n, seed, sampling, chunk, workers, progress)
    if not isinstance(waveforms, bool) or not isinstance(cache_features, bool):
        raise InputError(f"waveforms and cache_features must be True or False, got {waveforms!r}, {cache_features!r}")
    features = cache_features or not waveforms
    if scheduler is None:
        return _generate(*plan, None, features, waveforms)
    from .cluster import session  # dask is imported only when a scheduler is given

    if workers != 1:
        raise InputError("workers and scheduler do not mix: the cluster's workers render the chunks")
    with session(scheduler) as client:
        return _generate(*plan, client, features, waveforms)


def _generate(
    out: str | os.PathLike,
    generator: str | Generator,
    n: int,
    seed: int,
    sampling: str,
    chunk: int | None,
    workers: int,
    progress: bool,
    client: Any,
    features: bool,
    waveforms: bool,
) -> Store:
    n, seed, workers = int_arg("n", n, 1), int_arg("seed", seed, 0), int_arg("workers", workers, 1)
    chunk = None if chunk is None else int_arg("chunk", chunk, 1)
    if index_memory_problem(n):
        raise InputError(f"n={n}: {index_memory_problem(n)}")
    if sampling not in SAMPLINGS:
        raise InputError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    gen = load_generator(generator)
    spec, caveat = portable_spec(generator) if isinstance(generator, str) else (None, None)
    if caveat:
        log.warning("the store records generator %r; %s", spec, caveat)
    if workers > 1 and spec is None:
        raise InputError("workers > 1 needs a generator spec (workers load it by name), not a generator object")
    identity = generator_identity(gen, spec)
    where = Location(out)
    if workers > 1 and where.protocol == "memory":
        raise InputError(f"{where}: a memory:// store lives in one process; worker processes cannot write it (use workers=1)")

    if where.is_local:
        remove_stale(where.local.parent, where.local.name, "creating", remove=shutil.rmtree)  # left by a killed run
    try:
        if not where.is_empty():
            _resume(where, spec, gen, identity, n, seed, sampling, chunk, workers, progress, client, features, waveforms)
        else:
            chunk = chunk or default_chunk(gen.n_samples)
            probe = _probe(gen, chunk, n, seed, sampling, 0)
            grid = _feature_grid(gen) if features else None  # a broken picture fails here, before anything is written
            _require_space(where, probe if waveforms else probe[:, :0], n, grid)
            _create(where, gen, identity, seed, sampling, chunk, n, waveforms)
            with writer_lock(where), _partials_removed(where):
                if grid is not None:
                    _add_cache(Store(where, mode="r+"), gen, grid)
                _run(where, spec, gen, list(range(-(-n // chunk))), chunk, n, workers, progress, client)
                _fill_caches(where, gen, progress)
    except OSError as e:  # a read-only store, a full disk, a folder that vanished
        raise StoreError(f"{where}: cannot write the store: {e.strerror or e}") from None
    store = Store(where)
    if not store.is_complete:  # e.g. workers wrote to a memory:// or local path this process does not see
        raise StoreError(f"{where}: the chunks the workers wrote are not all visible here; is the store on storage every worker shares?")
    return store


def _resume(
    where: Location, spec, gen: Generator, identity, n: int, seed: int, sampling: str, chunk, workers: int, progress: bool, client, features: bool, waveforms: bool
) -> None:
    """Finish, grow or repair an existing store: re-render every chunk that is missing, new, or does not match its record.

    Then add the feature cache asked for, and finish every cache the store holds.
    """
    with writer_lock(where):
        store = Store(where, mode="r+")  # raises StoreError for anything that is not a wavinv store, or damaged metadata
        _check_compatible(store, identity, seed, sampling, chunk, n, waveforms)
        _check_writable(where)
        damaged = store.damaged_chunks()
        pending = sorted(set(_pending(store, n)) | set(damaged))
        grid = _feature_grid(gen) if features else None
        if grid is not None:
            _add_cache(store, gen, grid)
        if not pending:
            log.info("%s is already complete (%d samples)", where, n)
            with _partials_removed(where):
                _fill_caches(where, gen, progress)
            return
        rows = _probe(gen, store.chunk, n, seed, sampling, pending[0])
        _require_space(where, rows if waveforms else rows[:, :0], sum(min(n, (k + 1) * store.chunk) - k * store.chunk for k in pending), grid)
        if damaged:
            log.warning("%s: re-rendering %d damaged chunk%s (%s)", where, len(damaged), "s" * (len(damaged) > 1), ", ".join(map(str, damaged[:8])))
            for k in damaged:  # forget the record first: an interrupted repair is repaired again
                store.forget_chunk(k)
        _remove_partials(where)  # temporary files of writes killed mid-way
        with _partials_removed(where):
            store.grow(n)
            _run(where, spec, gen, pending, store.chunk, n, workers, progress, client)
            _fill_caches(where, gen, progress)


def _remove_partials(where: Location) -> None:
    """Delete the temporary files (``*.partial``) of chunk writes that did not finish (local stores)."""
    if where.is_local:
        for key in where.find(".partial"):
            where.remove(key)


@contextlib.contextmanager
def _partials_removed(where: Location) -> Iterator[None]:
    """A failed run (full disk, Ctrl-C, a NaN chunk) leaves no temporary files behind; finished chunks stay."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            _remove_partials(where)
        raise


def _check_writable(where: Location) -> None:
    """Refuse, before any write, a local store with symbolic links inside or folders this user cannot write."""
    links = where.links()
    if links:
        raise StoreError(f"{where}: {where.local / links[0]} is a symbolic link; a store holds plain files only (writes never follow links): remove it")
    if not where.is_local:
        return
    for top, _, _ in os.walk(where.local):
        if not os.access(top, os.W_OK | os.X_OK):
            raise StoreError(f"{where}: cannot write the store: {top} is not writable")


def _require_space(where: Location, probe: np.ndarray, rows: int, grid: tuple[int, ...] | None = None) -> None:
    """Refuse a run whose chunks will not fit on the disk, estimated from the probe's compressed size (and uncompressed features)."""
    if not where.is_local or not rows:
        return
    per_row = compressed_nbytes(probe) / len(probe) + (0 if grid is None else int(np.prod(grid)) * FEATURES_DTYPE.itemsize)
    require_disk(where.local, rows * per_row, f"rendering {rows} samples into {where}")


# -- feature caches ----------------------------------------------------------------------
def _feature_grid(gen: Generator, pool: tuple[int, int] = DEFAULT_POOL) -> tuple[int, ...]:
    """What a new store of ``gen`` caches: its picture pooled to ``pool`` (capped by the picture's size)."""
    from .models.features import pooled_grid

    cfg = _default_frontend(gen)
    if cfg is None:
        raise InputError(f"{gen.name}'s clips are too short for the default frontend: no spectrograms, so no features to cache")
    return pooled_grid((cfg["n_freq"], cfg["n_frames"]), pool, 1)


def _add_cache(store: Store, gen: Generator | None, grid: tuple[int, ...]) -> FeatureCache:
    """The store's cache of its own picture pooled to ``grid``, created empty when missing."""
    from .pictures import store_picture

    return store.add_feature_cache(store_picture(store, gen).config(), grid)


def _feature_plan(store: Store, gen: Generator | None) -> list[tuple[FeatureCache, Any]]:
    """``(cache, picture module)`` of every cache the store holds."""
    from .picture import picture_for

    caches = list(store.feature_caches().values())
    pictured = gen if gen is not None and any(c.picture.get("kind") == "generator" for c in caches) else None
    return [(c, picture_for(c.picture, pictured, str(store.location), StoreError)) for c in caches]


def _features(plan: list[tuple[FeatureCache, Any]], wave: np.ndarray) -> list[np.ndarray]:
    """Every planned cache's pooled rows of the float32 clips ``wave``."""
    if not plan:
        return []
    from .frontend import spectrogram
    from .models.features import pool_rows

    return [pool_rows(spectrogram(wave, module), cache.grid) for cache, module in plan]


def cache_features(
    path: "str | os.PathLike | Location", pool: tuple[int, int] | None = None, generator: str | Generator | None = None, progress: bool = True
) -> FeatureCache:
    """Add (or finish, or repair) the cache of the store's picture pooled to ``pool`` (default ``DEFAULT_POOL``); returns it.

    Reads the stored clips; a store without waveforms re-renders them with
    ``generator`` (needed unless the store's generator is built in), as does a
    store whose picture is its generator's own function. Resumable: only chunks
    not recorded against the current data, or whose rows no longer match their
    record, are computed. Raises ``StoreError`` for an incomplete store.
    """
    where = Location(path)
    store = Store(where)  # says what is wrong when this is not a store
    store.require_complete()
    if store.frontend_config is None:
        raise StoreError(f"{where} records no picture (clips too short for the default frontend): there are no spectrograms to pool")
    from .models.features import pooled_grid

    grid = pooled_grid((store.frontend_config["n_freq"], store.frontend_config["n_frames"]), DEFAULT_POOL if pool is None else tuple(pool), 1)
    gen = store.attach(generator) if generator is not None or not store.keeps_waveforms or store.frontend_config.get("kind") == "generator" else None
    _check_writable(where)
    if where.is_local:
        require_disk(where.local, store.n * int(np.prod(grid)) * FEATURES_DTYPE.itemsize, f"caching {store.n} feature rows in {where}")
    try:
        with writer_lock(where), _partials_removed(where):
            cache = _add_cache(Store(where, mode="r+"), gen, grid)
            _fill_caches(where, gen, progress, only=cache.key)
    except OSError as e:
        raise StoreError(f"{where}: cannot write the feature cache: {e.strerror or e}") from None
    return Store(where).feature_caches()[cache.key]


def _fill_caches(where: Location, gen: Generator | None, progress: bool, only: str | None = None) -> None:
    """Compute every cache chunk (of cache ``only``, or of all) not recorded against the current data, or damaged.

    The caller holds the store's lock. A store without waveforms re-renders the clips with ``gen``.
    """
    store = Store(where, mode="r+")
    if gen is not None:
        store.attach(gen)
    plan = [(c, m) for c, m in _feature_plan(store, gen) if only is None or c.key == only]
    records = store.records()[0]
    for cache, module in plan:
        mine, unreadable = cache.records()
        todo = {k for k in range(store.n_chunks) if not (mine[k, 1] and mine[k, 0] == records[k])} | set(unreadable)
        # a recorded chunk is rewritten when its rows no longer hash to the record (a damaged file)
        todo |= {k for k in range(store.n_chunks) if k not in todo and _cache_chunk_damaged(cache, k, mine[k])}
        if not todo:
            continue
        rows = sum(min(store.n, (k + 1) * store.chunk) - k * store.chunk for k in todo)
        desc = f"features {cache.label} {where.name}"
        with tqdm(total=rows, unit="clip", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
            for k in sorted(todo):
                rows_k = np.arange(*store.chunk_range(k))
                (pooled,) = _features([(cache, module)], store.clips(rows_k))
                cache.write_chunk(k, pooled, int(records[k]))
                bar.update(len(rows_k))


def _cache_chunk_damaged(cache: FeatureCache, k: int, record: np.ndarray) -> bool:
    pooled, _ = cache.read_chunk(k)
    return pooled is None or features_digest(int(record[0]), pooled) != int(record[1])


def render_chunk(store_path: str, generator: str | Generator, chunk_index: int) -> int:
    """Render chunk ``chunk_index`` of the store, write it, then record it complete.

    A standalone task (picklable arguments when ``generator`` is a spec) for
    worker processes or any other scheduler. Returns the number of samples written.
    """
    store = Store(store_path, mode="r+")
    gen = _load_cached(generator)
    if not same_generator(store.generator, generator_identity(gen)):
        raise StoreError(f"{store_path}: generator {gen.name!r} v{gen.version} is not the one this store was made with")
    k = int(chunk_index)
    if not 0 <= k < store.n_chunks:
        raise InputError(f"chunk index {k} out of range: {store_path} has {store.n_chunks} chunks")
    return store.write_chunk(k, *rendered_chunk(store, gen, k, _feature_plan(store, gen)))


def rendered_chunk(store: Store, gen: Generator, k: int, plan: list | tuple = ()) -> tuple[tuple[np.ndarray, ...], list[np.ndarray]]:
    """Chunk ``k`` of ``store`` made in memory, not written: sampled by id, rendered, checked.

    Returns ``((ids, params, params_unit[, waveform]), pooled rows per planned
    cache)``; ``store.write_chunk(k, *result)`` writes it. ``plan`` holds the
    feature caches to fill, as ``(cache, picture module)`` pairs (``generate``
    passes every cache the store holds; none by default). Every chunk that
    ``generate`` renders is made here, in a worker's ``render_chunk`` or in the
    one-process loop, so wrapping this function observes or interrupts a run
    chunk by chunk (the tests do), and timing it apart from ``write_chunk``
    splits a chunk's cost into rendering and writing (``benchmarks/store_speed.py``).
    """
    start, stop = store.chunk_range(k)
    params = store.space.sample(start, stop, store.seed, store.sampling)
    wave = render_checked(gen, params, offset=start).astype(WAVEFORM_DTYPE, copy=False)
    data = (np.arange(start, stop, dtype=np.int64), params, store.space.to_unit(params), wave)
    return data[: len(store.data_arrays)], _features(plan, wave)


# -- steps of generate ---------------------------------------------------------------
def _check_compatible(store: Store, identity: dict[str, Any], seed: int, sampling: str, chunk: int | None, n: int, waveforms: bool) -> None:
    """Refuse, before any write, a run that would not reproduce the store's definition."""
    old = store.generator
    if not same_generator(old, identity):
        raise StoreError(
            f"{store.location} was made by generator {old['name']!r} v{old['version']} (space {old['fingerprint']}, "
            f"{old['n_samples']} samples @ {old['sample_rate']} Hz), not {identity['name']!r} v{identity['version']} "
            f"(space {identity['fingerprint']}, {identity['n_samples']} samples @ {identity['sample_rate']} Hz): "
            "write to another --out"
        )
    if seed != store.seed:
        raise StoreError(f"{store.location} was made with seed {store.seed}, not {seed}: use --seed {store.seed} to resume, or another --out")
    if sampling != store.sampling:
        raise StoreError(f"{store.location} was sampled with --sampling {store.sampling!r}, not {sampling!r}: use the same sampling, or another --out")
    if chunk is not None and chunk != store.chunk:
        raise StoreError(f"{store.location} has chunks of {store.chunk} samples, not {chunk}: leave out --chunk to resume")
    if n < store.n:
        raise StoreError(f"{store.location} already holds {store.n} samples; a store only grows: use --n {store.n} or more, or another --out")
    if waveforms != store.keeps_waveforms:
        kept = "keeps waveforms: leave out --no-waveforms" if store.keeps_waveforms else "keeps no waveforms: add --no-waveforms"
        raise StoreError(f"{store.location} {kept} to resume, or write to another --out")


def _pending(store: Store, n: int) -> list[int]:
    """Chunks to render for ``n`` samples: unrecorded ones, new ones, and a partial last one that grows."""
    done = store.completed()
    n_chunks = -(-n // store.chunk)
    if n > store.n and store.n % store.chunk:
        done[-1] = False
    return [k for k in range(n_chunks) if k >= len(done) or not done[k]]


def _probe(gen: Generator, chunk: int, n: int, seed: int, sampling: str, k: int) -> np.ndarray:
    """Render the first rows of chunk ``k`` before writing anything: a broken generator fails here. Returns them."""
    start = k * chunk
    stop = min(n, start + _PROBE_ROWS)
    return render_checked(gen, gen.space.sample(start, stop, seed, sampling), offset=start)


def _default_frontend(gen: Generator) -> dict[str, Any] | None:
    """The picture the store records: the generator's own ``spectrogram`` when it has one, else wavinv's STFT."""
    from .frontend import frontend_config
    from .picture import GeneratorPicture, has_picture

    if has_picture(gen):
        return GeneratorPicture(gen).config()  # a broken function fails here, before anything is written
    try:
        return frontend_config(sample_rate=gen.sample_rate, n_samples=gen.n_samples)
    except WavinvError as e:  # clips too short for the default frontend: readers pass their own
        log.warning("no default frontend for %s: %s", gen.name, e)
        return None


def _create(where: Location, gen: Generator, identity: dict[str, Any], seed: int, sampling: str, chunk: int, n: int, waveforms: bool) -> None:
    """Create the empty store: all or nothing.

    A local store is built in a temporary directory and renamed into place. A URL
    store (no atomic rename) is built in place with its ``wavinv`` metadata written
    last, so an interrupted creation is never taken for a store.
    """
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if waveforms else FORMAT_VERSION_NO_WAVEFORMS,
        "generator": identity,
        "seed": seed,
        "method": sampling,
        "n": n,
        "chunk": chunk,
        "sample_rate": int(gen.sample_rate),
        "n_samples": int(gen.n_samples),
        "clip_seconds": gen.n_samples / gen.sample_rate,
        "waveform_dtype": WAVEFORM_DTYPE.name,
        "frontend": _default_frontend(gen),
        "splits": {"hash": "splitmix64(id)", **{k: list(v) for k, v in SPLITS.items()}},
        "wavinv_version": _version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if not where.is_local:
        try:
            create_layout(where.zarr_store(), "w", meta, len(gen.space), waveforms)  # the location is empty (checked by the caller)
        except Exception as e:  # fsspec backends raise their own errors for permissions and network trouble
            raise StoreError(f"cannot create {where}: {type(e).__name__}: {e}") from None
        return
    path = where.local
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror or e}") from None
    tmp = path.parent / temp_name(path.name, "creating")
    try:
        create_local_layout(tmp, meta, len(gen.space), waveforms)
        os.rename(tmp, path)  # replaces an empty directory; fails on anything else
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror or e}") from None
    finally:  # whatever failed (a full disk, metadata that is not JSON, Ctrl-C), nothing is left aside
        shutil.rmtree(tmp, ignore_errors=True)


def _version() -> str:
    from . import __version__

    return __version__


def _worker_spec(spec: str) -> str:
    """The spec with a file path made absolute, so worker processes find it from any directory."""
    path = generator_file(spec)
    return spec if path is None else f"{path.resolve()}:{spec.rpartition(':')[2]}"


def _load_cached(generator: str | Generator) -> Generator:
    if not isinstance(generator, str):
        return generator
    if generator not in _LOADED:
        _LOADED[generator] = load_generator(generator)
    return _LOADED[generator]


def _run(path: Location, spec: str | None, gen: Generator, pending: list[int], chunk: int, n: int, workers: int, progress: bool, client: Any = None) -> None:
    total = sum(min(n, (k + 1) * chunk) - k * chunk for k in pending)
    if client is not None:  # Dask tasks; a generator object is pickled to the workers
        from .cluster import run_chunks

        job = gen if spec is None else _worker_spec(spec)
        run_chunks(client, render_chunk, str(path), pending, job, sees=is_store, total=total, desc=f"generate {path.name} (dask)", progress=progress)
        return
    with tqdm(total=total, unit="clip", desc=f"generate {path.name}", disable=not progress, dynamic_ncols=True) as bar:
        if workers == 1 or len(pending) == 1:
            # chunk k is written (compressed, hashed) in a thread while chunk k + 1 renders
            store = Store(path, mode="r+")
            plan = _feature_plan(store, gen)
            with ThreadPoolExecutor(1, thread_name_prefix="wavinv-write") as writer:
                writing = None
                for k in pending:
                    data = rendered_chunk(store, gen, k, plan)
                    if writing is not None:
                        bar.update(writing.result())
                    writing = writer.submit(store.write_chunk, k, *data)
                bar.update(writing.result())
            return
        # spawn: worker processes start clean (torch and fork do not mix) and load the spec themselves
        ctx = multiprocessing.get_context("spawn")
        n_workers = min(workers, len(pending))
        init = (init_worker, (ctx.Value("i", 0), n_workers))
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=init[0], initargs=init[1]) as pool:
            futures = [pool.submit(render_chunk, str(path), _worker_spec(spec), k) for k in pending]
            try:
                for fut in as_completed(futures):
                    bar.update(fut.result())
            except BrokenProcessPool:
                raise StoreError(
                    f"a worker process died while writing {path} (out of memory?): finished chunks are kept; run the same command to resume"
                ) from None
            finally:
                for fut in futures:
                    fut.cancel()


def init_worker(counter, workers: int) -> None:
    """Set up worker ``i`` of ``workers``: exit with the parent, and take a share of the CPUs.

    Multi-threaded generators (numpy thread pools, torch, OpenMP) size their
    pools from the CPU affinity, so workers do not oversubscribe the machine.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        # a killed parent leaves pool workers waiting forever: follow it (a chunk in flight is lost, as documented)
        threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(1)), daemon=True).start()
    with counter.get_lock():
        i = counter.value
        counter.value += 1
    if not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    share = cpus[i::workers] if workers < len(cpus) else [cpus[i % len(cpus)]]
    os.sched_setaffinity(0, share)
