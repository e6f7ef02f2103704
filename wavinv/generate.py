"""Writing a dataset store: render chunk by chunk, resumably, in parallel processes.

``generate`` checks everything it can before it writes anything (the generator
loads, its identity, seed and sampling match an existing store, a probe render is
finite and well shaped), so a refused run leaves an existing store as it was.
Then each pending chunk goes to ``render_chunk``: sample the chunk's parameters
(addressable by id), render, write every array's chunk, and only then write the
chunk's completion record. Bytes depend only on (generator, seed, n): never on
the number of workers, the order chunks finish in, or interruptions.
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
import zarr
from tqdm.auto import tqdm

from .errors import InputError, StoreError, WavinvError
from .generators import Generator, generator_file, generator_identity, load_generator, portable_spec, render_checked
from .limits import int_arg, require_disk
from .location import Location
from .outputs import remove_stale, temp_name
from .params import SAMPLINGS
from .store import (
    ARRAYS,
    COMPLETE,
    FORMAT,
    FORMAT_VERSION,
    SPLITS,
    WAVEFORM_DTYPE,
    Store,
    chunk_digest,
    compressed_nbytes,
    compressors,
    default_chunk,
    index_memory_problem,
    is_store,
    same_generator,
)

__all__ = ["generate"]

log = logging.getLogger(__name__)

# rows rendered by the probe that runs before anything is written
_PROBE_ROWS = 2
# generators loaded in this process, by spec (worker processes render many chunks)
_LOADED: dict[str, Generator] = {}


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
) -> Store:
    """Render ``n`` samples of ``generator`` into the store ``out``; resume or grow it if it exists.

    ``generator`` is a spec for ``load_generator`` or a generator object (an
    object cannot be sent to worker processes: it needs ``workers=1``; Dask
    workers get it pickled).
    ``out`` is a directory or an fsspec URL (``wavinv.location``).
    ``chunk`` is samples per chunk (default: ~8 MiB of waveform). ``scheduler``
    renders the chunks as tasks on a Dask cluster instead of local processes
    (``"local:N"``, ``"tcp://host:8786"``, a ``distributed.Client``: see
    ``wavinv.cluster``), with the same bytes. Returns the store opened for reading.
    """
    if scheduler is None:
        return _generate(out, generator, n, seed, sampling, chunk, workers, progress, None)
    from .cluster import session  # dask is imported only when a scheduler is given

    if workers != 1:
        raise InputError("workers and scheduler do not mix: the cluster's workers render the chunks")
    with session(scheduler) as client:
        return _generate(out, generator, n, seed, sampling, chunk, workers, progress, client)


def _generate(
    out: str | os.PathLike, generator: str | Generator, n: int, seed: int, sampling: str, chunk: int | None, workers: int, progress: bool, client: Any
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
            _resume(where, spec, gen, identity, n, seed, sampling, chunk, workers, progress, client)
        else:
            chunk = chunk or default_chunk(gen.n_samples)
            _require_space(where, _probe(gen, chunk, n, seed, sampling, 0), n)
            _create(where, gen, identity, seed, sampling, chunk, n)
            with _locked(where), _partials_removed(where):
                _run(where, spec, gen, list(range(-(-n // chunk))), chunk, n, workers, progress, client)
    except OSError as e:  # a read-only store, a full disk, a folder that vanished
        raise StoreError(f"{where}: cannot write the store: {e.strerror or e}") from None
    store = Store(where)
    if not store.is_complete:  # e.g. workers wrote to a memory:// or local path this process does not see
        raise StoreError(f"{where}: the chunks the workers wrote are not all visible here; is the store on storage every worker shares?")
    return store


def _resume(where: Location, spec, gen: Generator, identity, n: int, seed: int, sampling: str, chunk, workers: int, progress: bool, client) -> None:
    """Finish, grow or repair an existing store: re-render every chunk that is missing, new, or does not match its record."""
    with _locked(where):
        store = Store(where, mode="r+")  # raises StoreError for anything that is not a wavinv store, or damaged metadata
        _check_compatible(store, identity, seed, sampling, chunk, n)
        _check_writable(where)
        damaged = store.damaged_chunks()
        pending = sorted(set(_pending(store, n)) | set(damaged))
        if not pending:
            log.info("%s is already complete (%d samples)", where, n)
            return
        rows = _probe(gen, store.chunk, n, seed, sampling, pending[0])
        _require_space(where, rows, sum(min(n, (k + 1) * store.chunk) - k * store.chunk for k in pending))
        if damaged:
            log.warning("%s: re-rendering %d damaged chunk%s (%s)", where, len(damaged), "s" * (len(damaged) > 1), ", ".join(map(str, damaged[:8])))
            for k in damaged:  # forget the record first: an interrupted repair is repaired again
                store.arrays[COMPLETE][k] = np.uint64(0)
        _remove_partials(where)  # temporary files of writes killed mid-way
        with _partials_removed(where):
            _grow(store, n)
            _run(where, spec, gen, pending, store.chunk, n, workers, progress, client)


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


def _require_space(where: Location, probe: np.ndarray, rows: int) -> None:
    """Refuse a run whose chunks will not fit on the disk, estimated from the probe's compressed size."""
    if not where.is_local or not rows:
        return
    per_row = compressed_nbytes(probe) / len(probe)
    require_disk(where.local, rows * per_row, f"rendering {rows} samples into {where}")


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
    return _write_chunk(store, k, _render_chunk(store, gen, k))


def _render_chunk(store: Store, gen: Generator, k: int) -> tuple[np.ndarray, ...]:
    """``(ids, params, params_unit, waveform)`` of chunk ``k``: sampled by id, rendered, checked."""
    start, stop = store.chunk_range(k)
    params = store.space.sample(start, stop, store.seed, store.sampling)
    wave = render_checked(gen, params, offset=start).astype(WAVEFORM_DTYPE, copy=False)
    return np.arange(start, stop, dtype=np.int64), params, store.space.to_unit(params), wave


def _write_chunk(store: Store, k: int, data: tuple[np.ndarray, ...]) -> int:
    """Write chunk ``k`` of every array, then its completion record. Returns its number of samples."""
    start, stop = store.chunk_range(k)
    try:
        for name, values in zip(ARRAYS, data):
            # every data chunk gets a file, even an all-zero one (so verify can tell "missing")
            store.arrays[name].with_config({"write_empty_chunks": True})[start:stop] = values
        store.arrays[COMPLETE][k] = np.uint64(chunk_digest(*data))
    except OSError as e:
        raise StoreError(f"{store.location}: writing chunk {k} failed: {e}") from e
    return stop - start


# -- steps of generate ---------------------------------------------------------------
def _check_compatible(store: Store, identity: dict[str, Any], seed: int, sampling: str, chunk: int | None, n: int) -> None:
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


def _create(where: Location, gen: Generator, identity: dict[str, Any], seed: int, sampling: str, chunk: int, n: int) -> None:
    """Create the empty store: all or nothing.

    A local store is built in a temporary directory and renamed into place. A URL
    store (no atomic rename) is built in place with its ``wavinv`` metadata written
    last, so an interrupted creation is never taken for a store.
    """
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
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
    p = len(gen.space)

    def build(store: str, mode: str) -> None:
        group = zarr.open_group(store=store, mode=mode, zarr_format=3)
        for name, shape, dtype, fill in (
            ("id", (n,), "int64", -1),
            ("params", (n, p), "float64", np.nan),
            ("params_unit", (n, p), "float64", np.nan),
            ("waveform", (n, gen.n_samples), WAVEFORM_DTYPE.name, np.nan),
        ):
            group.create_array(name, shape=shape, chunks=(chunk, *shape[1:]), dtype=dtype, fill_value=fill, compressors=compressors())
        group.create_array(COMPLETE, shape=(-(-n // chunk),), chunks=(1,), dtype="uint64", fill_value=0, compressors=compressors())
        group.attrs["wavinv"] = meta

    if not where.is_local:
        try:
            build(where.zarr_store(), "w")  # the location is empty (checked by the caller)
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
        build(str(tmp), "w-")
        os.rename(tmp, path)  # replaces an empty directory; fails on anything else
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror or e}") from None
    finally:  # whatever failed (a full disk, metadata that is not JSON, Ctrl-C), nothing is left aside
        shutil.rmtree(tmp, ignore_errors=True)


def _version() -> str:
    from . import __version__

    return __version__


def _grow(store: Store, n: int) -> None:
    """Make the store hold ``n`` samples. Safe to repeat after an interruption at any step."""
    old = store.n
    if n > old and old % store.chunk:
        # the last chunk gets more rows: forget its record first, so it is re-rendered whole
        store.arrays[COMPLETE][old // store.chunk] = np.uint64(0)
    if n != old:
        store.meta["n"] = n
        store.group.attrs["wavinv"] = store.meta
    for name in ARRAYS:
        arr = store.arrays[name]
        if arr.shape[0] != n:
            arr.resize((n, *arr.shape[1:]))
    if store.arrays[COMPLETE].shape[0] != store.n_chunks:
        store.arrays[COMPLETE].resize((store.n_chunks,))


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
            with ThreadPoolExecutor(1, thread_name_prefix="wavinv-write") as writer:
                writing = None
                for k in pending:
                    data = _render_chunk(store, gen, k)
                    if writing is not None:
                        bar.update(writing.result())
                    writing = writer.submit(_write_chunk, store, k, data)
                bar.update(writing.result())
            return
        # spawn: worker processes start clean (torch and fork do not mix) and load the spec themselves
        ctx = multiprocessing.get_context("spawn")
        n_workers = min(workers, len(pending))
        init = (_init_worker, (ctx.Value("i", 0), n_workers))
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


def _init_worker(counter, workers: int) -> None:
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


@contextlib.contextmanager
def _locked(where: Location) -> Iterator[None]:
    """Hold an exclusive lock on a local store's directory: one writer at a time.

    URL stores have no lock (object stores offer none): one writer at a time is the user's job.
    """
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        fcntl = None
    if fcntl is None or not where.is_local:
        yield
        return
    path = where.local
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise StoreError(f"cannot open {path}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{path} is being written by another wavinv generate: wait for it to finish") from None
        yield
    finally:
        os.close(fd)
