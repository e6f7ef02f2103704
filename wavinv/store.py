"""The dataset store: parameters in, audio out, linked by ids, in one Zarr v3 group.

Layout of a store directory (a Zarr v3 group)::

    id           int64    (N,)       sample ids 0..N-1
    params       float64  (N, P)     natural units, columns in space order
    params_unit  float64  (N, P)     the same, unit scale (``space.to_unit(params)``)
    waveform     float32  (N, T)     the generator's clips (absent from a store made with ``waveforms=False``)
    complete     uint64   (n_chunks,) per chunk: 0 = not written, else a digest of its data
    features/GxH-FP/pooled   float32 (N, G*H)      optional feature caches (below)
    features/GxH-FP/complete uint64  (n_chunks, 2) per chunk: [its data record, digest of its pooled rows]

Every data array is chunked along samples (``chunk`` rows per chunk) and stored
with Blosc lz4 + byte shuffle and a CRC32C checksum, so a damaged chunk fails on
read. ``complete[k]`` is written only after chunk ``k`` of every array has been
written, and holds a 64-bit digest (SHA-256) of that chunk's decoded data: it is
the record of progress (chunk files alone prove nothing) and lets ``verify``
check that the record matches the data. The group attribute ``wavinv`` holds
the generator's identity, seed, sampling (key ``method``), sizes, the default frontend
configuration, the wavinv version and the creation time.

Reading never loads the whole store: ``waveforms()`` is a ``LazyArray`` view
that reads whole chunks, and ``batches()`` walks a split a few chunks at a time.
Splits are a hash of the id (80/10/10), so every reader gets the same split, and
an id keeps its split when the store grows. The store computes no spectrogram:
``wavinv.pictures`` pictures its clips on the fly with the frontend.

**Feature caches.** What the classical estimators read of a spectrogram is its
average-pooled grid (``models.features``). A store may hold those rows, one
cache per (picture, grid): the subgroup ``features/GxH-FP`` (``FP`` the picture
config's fingerprint, recorded in full in the subgroup's attributes). A cache
chunk's record pairs the data chunk's own record (so a re-rendered or grown
chunk leaves it stale) with a digest of its pooled rows; readers use a cache only
when every chunk is recorded against the current data. ``generate`` writes the
caches a store holds with every chunk; ``generate.cache_features`` adds or
finishes one. A store made with ``waveforms=False`` (format version 2) keeps no
``waveform`` array: its clips are re-rendered by the generator when asked for,
and its pooled features are read from its caches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from .errors import InputError, StoreError
from .lazy import LazyArray
from .limits import human_bytes, total_memory
from .location import Location
from .params import ParamSpace
from .schema import store_meta_problem

__all__ = ["SPLITS", "FeatureCache", "Store", "is_store", "open_store"]

FORMAT = "wavinv-store"
FORMAT_VERSION = 1
# a store without waveforms: an older wavinv refuses it by its version instead of calling it damaged
FORMAT_VERSION_NO_WAVEFORMS = 2
WAVEFORM_DTYPE = np.dtype("float32")
FEATURES = "features"
FEATURES_DTYPE = np.dtype("float32")
# the data arrays, in the order a chunk is written; ``complete`` is written last
ARRAYS = ("id", "params", "params_unit", "waveform")
COMPLETE = "complete"
SPLITS: dict[str, tuple[float, float]] = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}
# Chunks of ~8 MiB of waveform: large enough that reads of whole chunks stream at
# >1 GB/s, small enough that an interruption loses little (see data/README.md).
CHUNK_BYTES = 8 << 20
# decoded chunks kept by a reader, so row-by-row or split-by-split reads do not
# decode the same chunk twice
_CACHE_CHUNKS = 4
# chunks read at once by a reader
_READ_THREADS = 4
# bytes per sample of the indexes every reader builds over all rows (ids, split hashes, masks):
# a store claiming more rows than the machine's memory can index is refused on open, and not made
INDEX_BYTES_PER_ROW = 48
# Blosc settings of every data array (measured below, in ``compressors``)
_BLOSC = {"cname": "lz4", "clevel": 9}


def compressors() -> list:
    """Blosc lz4 (level 9) + byte shuffle, then a CRC32C checksum.

    Measured on synth100 audio (``benchmarks/store_speed.py``, data/README.md):
    1.146x smaller, decoded at 3.2-3.4 GB/s on one core; bitshuffle or zstd
    compress 1-4 % more but decode 1.4-8x slower, and zstd encodes 5-10x slower.
    """
    return [BloscCodec(**_BLOSC, shuffle="shuffle"), Crc32cCodec()]


def compressed_nbytes(rows: np.ndarray) -> int:
    """About how many bytes ``rows`` take on disk with the store's compression."""
    from numcodecs import Blosc

    return len(Blosc(**_BLOSC, shuffle=Blosc.SHUFFLE).encode(np.ascontiguousarray(rows)))


def index_memory_problem(n: int) -> str | None:
    """Why ``n`` samples are more than this machine can index, or None."""
    need = int(n) * INDEX_BYTES_PER_ROW
    if need <= total_memory():
        return None
    return f"indexing {n} samples needs about {human_bytes(need)} of memory, more than this machine's {human_bytes(total_memory())}"


def default_chunk(n_samples: int) -> int:
    """Samples per chunk for clips of ``n_samples``: a power of two near ``CHUNK_BYTES``."""
    rows = CHUNK_BYTES // (int(n_samples) * WAVEFORM_DTYPE.itemsize)
    return int(min(4096, max(1, 1 << max(0, int(rows).bit_length() - 1))))


def split_of(ids: np.ndarray) -> np.ndarray:
    """Split name index (0 train, 1 val, 2 test) of each id, from a splitmix64 hash of the id."""
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    edges = np.array([hi for _, hi in SPLITS.values()][:-1])
    return np.searchsorted(edges, u, side="right")


def split_ids(n: int, split: str | None = None) -> np.ndarray:
    """Sorted ids of a split among ids ``0 .. n-1`` (``None``: all): a store of ``n`` samples, or one grown to ``n``."""
    if split is None:
        return np.arange(n, dtype=np.int64)
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
    return np.flatnonzero(split_of(np.arange(n)) == list(SPLITS).index(split)).astype(np.int64)


def chunk_digest(ids: np.ndarray, params: np.ndarray, params_unit: np.ndarray, waveform: np.ndarray | None = None) -> int:
    """The completion record of one chunk: the first 64 bits of the SHA-256 of its data (never 0).

    ``waveform`` is None in a store that keeps none. SHA-256 (hardware-accelerated
    on current CPUs) runs at about twice BLAKE2b's speed here.
    """
    h = hashlib.sha256()
    for a, dtype in ((ids, "<i8"), (params, "<f8"), (params_unit, "<f8"), (waveform, WAVEFORM_DTYPE.newbyteorder("<"))):
        if a is not None:
            h.update(np.ascontiguousarray(a, dtype=dtype))  # no copy when already contiguous little-endian
    return int.from_bytes(h.digest()[:8], "little") or 1


def read_records(arr, n_chunks: int) -> tuple[np.ndarray, list[int]]:
    """The first ``n_chunks`` rows of a record array (zero where absent), and the chunks whose record is unreadable."""
    out = np.zeros((n_chunks, *arr.shape[1:]), dtype=np.uint64)
    m = min(n_chunks, arr.shape[0])
    damaged: list[int] = []
    try:
        out[:m] = arr[:m]
    except Exception:  # a damaged record file (checksum): read one by one to isolate it
        for k in range(m):
            try:
                out[k] = arr[k]
            except Exception:
                damaged.append(k)
    return out, damaged


def features_digest(record: int, pooled: np.ndarray) -> int:
    """A feature cache chunk's digest: SHA-256 of the data chunk's record and the pooled rows (never 0)."""
    h = hashlib.sha256(int(record).to_bytes(8, "little"))
    h.update(np.ascontiguousarray(pooled, dtype=FEATURES_DTYPE.newbyteorder("<")))
    return int.from_bytes(h.digest()[:8], "little") or 1


def feature_key(picture: dict[str, Any], grid: tuple[int, ...]) -> str:
    """The name of a feature cache: the pooled grid and a fingerprint of the picture config (``"64x64-3f2a..."``)."""
    text = json.dumps(picture, sort_keys=True, separators=(",", ":"))
    return "x".join(str(int(g)) for g in grid) + "-" + hashlib.sha256(text.encode()).hexdigest()[:12]


class FeatureCache:
    """One feature cache of a store: pooled picture rows ``(N, prod(grid))`` and their chunk records.

    ``picture`` is the frontend config that drew the spectrograms, ``grid`` what
    they were average-pooled to. Reads go through the owning ``Store``.
    """

    def __init__(self, store: "Store", key: str, group):
        meta = group.attrs.get("wavinv_features")
        problem = _features_meta_problem(meta)
        if problem:
            raise StoreError(f"{store.location}: damaged feature cache {FEATURES}/{key}: {problem} (remove the folder {FEATURES}/{key} and run `wavinv cache` again)")
        self.store, self.key = store, key
        self.picture: dict[str, Any] = dict(meta["picture"])
        self.grid: tuple[int, ...] = tuple(int(g) for g in meta["grid"])
        self.pooled = group["pooled"]
        self.complete = group["complete"]
        width = int(np.prod(self.grid))
        if self.pooled.shape[1:] != (width,) or self.pooled.chunks != (store.chunk, width) or self.complete.chunks != (1, 2):
            raise StoreError(f"{store.location}: damaged feature cache {FEATURES}/{key}: arrays do not match its grid {self.grid} and the store's chunks")
        self._cache = _ChunkCache(_CACHE_CHUNKS)

    @property
    def label(self) -> str:
        return "x".join(map(str, self.grid))

    def records(self) -> tuple[np.ndarray, list[int]]:
        """``(n_chunks, 2)`` records, zero where absent, and the chunks whose record is unreadable."""
        return read_records(self.complete, self.store.n_chunks)

    def current(self, data_records: np.ndarray | None = None) -> np.ndarray:
        """Bool per chunk: its pooled rows are recorded, against the data chunk as it is now."""
        data = self.store.records()[0] if data_records is None else data_records
        mine = self.records()[0]
        return (mine[:, 1] != 0) & (mine[:, 0] == data) & (data != 0)

    def read_chunk(self, k: int) -> tuple[np.ndarray | None, str | None]:
        """``(pooled rows of chunk k, None)``, or ``(None, why not)``."""
        key = self.store.chunk_key(self.pooled, k)
        if not self.store.location.exists(key):
            return None, f"feature chunk file {key} is missing"
        try:
            return self.pooled[slice(*self.store.chunk_range(k))], None
        except Exception as exc:  # checksum or codec failure
            return None, f"feature chunk file {key} is damaged ({type(exc).__name__}: {exc})"

    def write_chunk(self, k: int, pooled: np.ndarray, data_record: int) -> None:
        """Write chunk ``k``'s pooled rows, then its record (``data_record``: the data chunk's own)."""
        s, e = self.store.chunk_range(k)
        self.pooled.with_config({"write_empty_chunks": True})[s:e] = pooled
        self.complete[k] = np.array([data_record, features_digest(data_record, pooled)], dtype=np.uint64)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.store.read_rows(self.pooled, rows, self._cache)


def _features_meta_problem(meta: Any) -> str | None:
    if not isinstance(meta, dict) or not isinstance(meta.get("picture"), dict) or not isinstance(meta.get("grid"), list):
        return "its attributes are not a wavinv feature cache's"
    if not meta["grid"] or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in meta["grid"]):
        return f"grid {meta['grid']!r} is not positive integers"
    if meta.get("dtype") != FEATURES_DTYPE.name:
        return f"dtype {meta.get('dtype')!r}, this wavinv reads {FEATURES_DTYPE.name}"
    return None


@contextlib.contextmanager
def writer_lock(where: Location) -> Iterator[None]:
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
            raise StoreError(f"{path} is being written by another wavinv command (generate or cache): wait for it to finish") from None
        yield
    finally:
        os.close(fd)


_POOL: ThreadPoolExecutor | None = None


def _reader_pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="wavinv-read")
    return _POOL


class _ChunkCache:
    """Decoded chunks of one array; the least recently used is dropped first."""

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self.blocks: dict[int, np.ndarray] = {}

    def get(self, k: int) -> np.ndarray | None:
        block = self.blocks.pop(k, None)
        if block is not None:
            self.blocks[k] = block
        return block

    def put(self, k: int, block: np.ndarray) -> None:
        self.blocks.pop(k, None)
        self.blocks[k] = block
        while len(self.blocks) > self.capacity:
            self.blocks.pop(next(iter(self.blocks)))


def _rebatched(windows: Iterator[tuple[tuple[np.ndarray, ...], bool]], size: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Row-aligned arrays cut into batches of ``size`` rows, from ``(arrays, is the last)`` windows.

    A batch may take rows from several windows; only the last one is shorter.
    """
    carry = None
    for data, last in windows:
        pos = 0
        if carry is not None:  # complete the batch left over from the last window
            pos = min(size - len(carry[0]), len(data[0]))
            carry = tuple(np.concatenate([c, d[:pos]]) for c, d in zip(carry, data))
            if len(carry[0]) < size and not last:
                continue
            yield carry
            carry = None
        n = len(data[0])
        stop = n if last else pos + (n - pos) // size * size
        for s in range(pos, stop, size):
            yield tuple(d[s : min(s + size, stop)] for d in data)
        if stop < n:  # copied, so the window can be let go
            carry = tuple(d[stop:].copy() for d in data)
    if carry is not None:
        yield carry


# why re-running generate does not help when the metadata itself is damaged
_NO_REPAIR = "generate re-renders chunks, not metadata: restore zarr.json from a copy, or write to another --out"


def _store_kind(location: Location) -> str:
    """``"store"``, ``"damaged"`` (a zarr.json that is not JSON), or ``"other"`` (no wavinv store there)."""
    try:
        text = location.read_text("zarr.json")
    except (OSError, ValueError, StoreError):
        return "other"
    try:
        meta = json.loads(text)
    except ValueError:
        return "damaged"
    attrs = meta.get("attributes", {}) if isinstance(meta, dict) else {}
    return "store" if isinstance(attrs, dict) and isinstance(attrs.get("wavinv"), dict) and attrs["wavinv"].get("format") == FORMAT else "other"


def is_store(path: "str | os.PathLike | Location") -> bool:
    """True when ``path`` (a directory or an fsspec URL) holds a wavinv store."""
    try:
        return _store_kind(Location(path)) == "store"
    except StoreError:
        return False


def open_store(path: "str | os.PathLike | Location") -> "Store":
    """Open a store (a directory or an fsspec URL) for reading. Raises ``StoreError`` when it is not one."""
    return Store(path)


def create_layout(zarr_store: Any, mode: str, meta: dict[str, Any], n_params: int, waveforms: bool = True) -> None:
    """Write an empty store's arrays (every sample unwritten, every chunk record 0), then its ``meta``.

    ``zarr_store`` is what ``zarr.open_group`` takes (a path or an fsspec store);
    the ``wavinv`` attributes go last, so an interrupted creation is never taken
    for a store. This and ``Store``'s write methods are the only code that knows
    the Zarr layout.
    """
    n, chunk = int(meta["n"]), int(meta["chunk"])
    group = zarr.open_group(store=zarr_store, mode=mode, zarr_format=3)
    for name, shape, dtype, fill in (
        ("id", (n,), "int64", -1),
        ("params", (n, n_params), "float64", np.nan),
        ("params_unit", (n, n_params), "float64", np.nan),
        ("waveform", (n, int(meta["n_samples"])), WAVEFORM_DTYPE.name, np.nan),
    ):
        if name == "waveform" and not waveforms:
            continue
        group.create_array(name, shape=shape, chunks=(chunk, *shape[1:]), dtype=dtype, fill_value=fill, compressors=compressors())
    group.create_array(COMPLETE, shape=(-(-n // chunk),), chunks=(1,), dtype="uint64", fill_value=0, compressors=compressors())
    group.attrs["wavinv"] = meta


def create_local_layout(path: Path, meta: dict[str, Any], n_params: int, waveforms: bool = True) -> None:
    """``create_layout`` into the new folder ``path``: laid out in memory, then written file by file,
    the group's metadata (the wavinv attributes) last. Zarr writes a layout's files concurrently, and
    one still in flight when another failed (a full disk) would land after the caller's cleanup."""
    layout: dict[str, Any] = {}
    create_layout(zarr.storage.MemoryStore(store_dict=layout), "w-", meta, n_params, waveforms)
    path.mkdir()
    for key in sorted(layout, key=lambda k: k == "zarr.json"):
        (path / key).parent.mkdir(parents=True, exist_ok=True)
        (path / key).write_bytes(layout[key].to_bytes())


class Store:
    """A wavinv dataset store: opened for reading, and (``mode="r+"``, under ``writer_lock``)
    for the writes ``generate`` and ``wavinv cache`` make: ``grow``, ``write_chunk``,
    ``forget_chunk``, ``add_feature_cache``."""

    def __init__(self, path: "str | os.PathLike | Location", mode: str = "r"):
        self.location = Location(path)
        if not self.location.exists():
            raise StoreError(f"{self.location}: no such store")
        kind = _store_kind(self.location)
        if kind == "damaged":
            raise StoreError(f"{self.location}: damaged store metadata: zarr.json is not valid JSON ({_NO_REPAIR})")
        if kind != "store":
            raise StoreError(f"{self.location} is not a wavinv store (no wavinv attributes in zarr.json)")
        try:
            self.group = zarr.open_group(store=self.location.zarr_store(), mode=mode, zarr_format=3)
            self.meta: dict[str, Any] = dict(self.group.attrs["wavinv"])
            keeps = self.meta.get("format_version") != FORMAT_VERSION_NO_WAVEFORMS
            self.arrays = {name: self.group[name] for name in (*ARRAYS, COMPLETE) if keeps or name != "waveform"}
        except (KeyError, ValueError, TypeError, OSError) as e:
            raise StoreError(f"{self.location}: damaged store metadata: {type(e).__name__}: {e} ({_NO_REPAIR})") from None
        problem = store_meta_problem(self.meta, (FORMAT_VERSION, FORMAT_VERSION_NO_WAVEFORMS))
        if problem:
            raise StoreError(f"{self.location}: damaged store metadata in zarr.json: {problem} ({_NO_REPAIR})")
        problem = index_memory_problem(self.n)
        if problem:
            raise StoreError(f"{self.location} claims {self.n} samples: {problem}")
        self._check_arrays()
        self._caches = {name: _ChunkCache(_CACHE_CHUNKS) for name in self.data_arrays}
        self._checked_complete = False
        self._features: dict[str, FeatureCache] | None = None
        self._renderer = None  # the generator that re-renders clips of a store without waveforms

    def _check_arrays(self) -> None:
        """Every array is chunked as the metadata says and has the row shape it must have."""
        rows = {"id": (), "params": (len(self.space),), "params_unit": (len(self.space),), "waveform": (self.n_samples,)}
        for name in self.data_arrays:
            row = rows[name]
            arr = self.arrays[name]
            if tuple(arr.shape[1:]) != row or arr.chunks[0] != self.chunk or tuple(arr.chunks[1:]) != row:
                raise StoreError(
                    f"{self.location}: damaged store metadata: array {name} has shape {arr.shape} in chunks {arr.chunks}, "
                    f"expected rows {row} in chunks of {self.chunk} ({_NO_REPAIR})"
                )
        if self.arrays[COMPLETE].ndim != 1 or self.arrays[COMPLETE].chunks != (1,):
            raise StoreError(f"{self.location}: damaged store metadata: array {COMPLETE} is not one record per chunk ({_NO_REPAIR})")

    def repair_command(self) -> str:
        """The ``wavinv generate`` command that finishes or repairs this store (re-rendering what is missing or damaged)."""
        spec = self.generator.get("spec") or "SPEC"
        no_waves = [] if self.keeps_waveforms else ["--no-waveforms"]
        return shlex.join(["wavinv", "generate", "--generator", spec, "--n", str(self.n), "--seed", str(self.seed), "--sampling", self.sampling, *no_waves, "--out", str(self.location)])

    def cache_command(self, grid: tuple[int, ...]) -> str:
        """The ``wavinv cache`` command that adds, finishes or repairs the feature cache of ``grid``."""
        spec = [] if self.keeps_waveforms else ["--generator", self.generator.get("spec") or "SPEC"]
        return shlex.join(["wavinv", "cache", str(self.location), "--pool", "x".join(map(str, grid)), *spec])

    def chunk_key(self, name, k: int) -> str:
        """The key of chunk ``k`` of array ``name`` (or a zarr array of the store) below the store (``"waveform/c/3/0"``)."""
        arr = self.arrays[name] if isinstance(name, str) else name
        return f"{arr.path}/{arr.metadata.encode_chunk_key((k,) + (0,) * (arr.ndim - 1))}"

    def read_chunk(self, k: int) -> tuple[tuple[np.ndarray, ...] | None, str | None]:
        """``(data of every array, None)`` for chunk ``k``, or ``(None, why not)``: a missing or damaged chunk file."""
        s, e = self.chunk_range(k)
        data = []
        for name in self.data_arrays:
            key = self.chunk_key(name, k)
            if not self.location.exists(key):
                return None, f"{name} chunk file {key} is missing"
            try:
                data.append(self.arrays[name][s:e])
            except Exception as exc:  # checksum or codec failure
                return None, f"{name} chunk file {key} is damaged ({type(exc).__name__}: {exc})"
        return tuple(data), None

    def damaged_chunks(self) -> list[int]:
        """Chunks whose record cannot be read, or is there while the chunk's files are missing, unreadable or hash to something else.

        Reads every recorded chunk (several at a time), like ``verify``.
        """
        records, unreadable = self.records()
        recorded = [k for k in range(len(records)) if records[k]]

        def matches(k: int) -> bool:
            data, _ = self.read_chunk(k)
            return data is not None and int(records[k]) == chunk_digest(*data)

        return sorted(set(unreadable) | {k for k, good in zip(recorded, _reader_pool().map(matches, recorded)) if not good})

    @property
    def path(self) -> Path:
        """The store's directory (local stores only; ``location`` works for every store)."""
        if self.location.local is None:
            raise StoreError(f"{self.location} is not a local directory")
        return self.location.local

    # -- what the store is -------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.meta["n"])

    @property
    def keeps_waveforms(self) -> bool:
        """False for a store made with ``waveforms=False``: its clips are re-rendered when asked for."""
        return "waveform" in self.arrays

    @property
    def data_arrays(self) -> tuple[str, ...]:
        """The data arrays this store holds, in the order a chunk is written (``chunk_digest``'s order)."""
        return tuple(a for a in ARRAYS if a in self.arrays)

    # -- feature caches ------------------------------------------------------------
    def feature_caches(self) -> dict[str, FeatureCache]:
        """Every feature cache the store holds, by key (complete or not)."""
        if self._features is None:
            found: dict[str, FeatureCache] = {}
            if FEATURES in self.group:
                try:
                    members = list(self.group[FEATURES].groups())
                except (KeyError, ValueError, TypeError, OSError) as e:
                    raise StoreError(f"{self.location}: damaged feature caches: {type(e).__name__}: {e}") from None
                for key, group in sorted(members):
                    try:
                        found[key] = FeatureCache(self, key, group)
                    except (KeyError, ValueError, TypeError, OSError) as e:
                        raise StoreError(f"{self.location}: damaged feature cache {FEATURES}/{key}: {type(e).__name__}: {e}") from None
            self._features = found
        return self._features

    def feature_cache(self, picture: dict[str, Any], grid: tuple[int, ...]) -> FeatureCache | None:
        """The cache of ``picture`` pooled to ``grid`` when the store holds it complete and current, else None."""
        cache = self.feature_caches().get(feature_key(picture, grid))
        if cache is None or cache.picture != picture or cache.grid != tuple(grid):
            return None
        return cache if bool(cache.current().all()) else None

    def add_feature_cache(self, picture: dict[str, Any], grid: tuple[int, ...]) -> FeatureCache:
        """Create the (empty) cache of ``picture`` pooled to ``grid``, or return it when it exists. Needs a writable store."""
        key = feature_key(picture, grid)
        if key in self.feature_caches():
            return self.feature_caches()[key]
        width = int(np.prod(grid))
        group = self.group.require_group(FEATURES).create_group(key)
        group.create_array("pooled", shape=(self.n, width), chunks=(self.chunk, width), dtype=FEATURES_DTYPE.name, fill_value=np.nan, compressors=compressors())
        group.create_array("complete", shape=(self.n_chunks, 2), chunks=(1, 2), dtype="uint64", fill_value=0, compressors=compressors())
        group.attrs["wavinv_features"] = {"picture": picture, "grid": [int(g) for g in grid], "dtype": FEATURES_DTYPE.name}
        self._features = None
        return self.feature_caches()[key]

    # -- re-rendering ----------------------------------------------------------------
    def attach(self, generator=None):
        """Load (and check) the generator that re-renders this store's clips; returns it.

        Needed only by a store without waveforms. ``generator``: an object or a
        spec; None loads the recorded generator only when it is a built-in one.
        """
        if generator is None and self._renderer is not None:
            return self._renderer
        from .generators import recorded_generator

        owner = f"{self.location} (it keeps no waveforms: they are re-rendered)" if not self.keeps_waveforms else str(self.location)
        self._renderer = recorded_generator(self.generator, generator, owner, StoreError)
        return self._renderer

    def _rendered(self, rows: np.ndarray) -> np.ndarray:
        """Clips of ``rows`` (sorted) re-rendered from their stored parameters, as ``generate`` rendered them."""
        from .generators import render_checked

        gen = self.attach()
        return render_checked(gen, self.read_rows("params", rows), offset=int(rows[0]) if len(rows) else 0).astype(WAVEFORM_DTYPE, copy=False)

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    @property
    def sampling(self) -> str:
        """How the parameters were drawn, ``uniform`` or ``sobol`` (stored under the key ``method``)."""
        return str(self.meta["method"])

    @property
    def chunk(self) -> int:
        return int(self.meta["chunk"])

    @property
    def generator(self) -> dict[str, Any]:
        """The generator's identity (``generator_identity``) recorded at creation."""
        return dict(self.meta["generator"])

    @cached_property
    def space(self) -> ParamSpace:
        return ParamSpace.from_json(self.meta["generator"]["space"])

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def n_samples(self) -> int:
        return int(self.meta["n_samples"])

    @property
    def frontend_config(self) -> dict[str, Any] | None:
        cfg = self.meta.get("frontend")
        return dict(cfg) if cfg else None

    @property
    def fingerprint(self) -> str:
        """What the store's content is defined by: generator identity, seed, sampling and n."""
        return content_fingerprint(self.generator, self.seed, self.sampling, self.n)

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk)

    def shape_problems(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """``{array: (shape, expected shape)}`` of the data arrays whose length is not ``n`` (a growth cut short)."""
        n, p, t = self.n, len(self.space), self.n_samples
        expected = dict(zip(ARRAYS, ((n,), (n, p), (n, p), (n, t))))
        return {name: (tuple(self.arrays[name].shape), expected[name]) for name in self.data_arrays if tuple(self.arrays[name].shape) != expected[name]}

    # -- writing (generate holds the writer lock) --------------------------------------------
    def grow(self, n: int) -> None:
        """Make the store hold ``n`` samples. Safe to repeat after an interruption at any step."""
        old = self.n
        if n > old and old % self.chunk:
            # the last chunk gets more rows: forget its record first, so it is re-rendered whole
            self.forget_chunk(old // self.chunk)
        if n != old:
            self.meta["n"] = n
            self.group.attrs["wavinv"] = self.meta
        for arr in [self.arrays[name] for name in self.data_arrays] + [c.pooled for c in self.feature_caches().values()]:
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))
        if self.arrays[COMPLETE].shape[0] != self.n_chunks:
            self.arrays[COMPLETE].resize((self.n_chunks,))
        for cache in self.feature_caches().values():
            if cache.complete.shape[0] != self.n_chunks:
                cache.complete.resize((self.n_chunks, 2))

    def forget_chunk(self, k: int) -> None:
        """Mark chunk ``k`` as not written (its data is rendered again)."""
        self.arrays[COMPLETE][k] = np.uint64(0)

    def write_chunk(self, k: int, data: tuple[np.ndarray, ...], pooled: list[np.ndarray]) -> int:
        """Write chunk ``k`` of every data array, then its completion record, then its rows of every
        feature cache (``pooled``, in ``feature_caches()`` order). Returns its number of samples."""
        start, stop = self.chunk_range(k)
        try:
            for name, values in zip(self.data_arrays, data):
                # every data chunk gets a file, even an all-zero one (so verify can tell "missing")
                self.arrays[name].with_config({"write_empty_chunks": True})[start:stop] = values
            record = chunk_digest(*data)
            self.arrays[COMPLETE][k] = np.uint64(record)
            for cache, rows in zip(self.feature_caches().values(), pooled):
                cache.write_chunk(k, rows, record)
        except OSError as e:
            raise StoreError(f"{self.location}: writing chunk {k} failed: {e}") from e
        return stop - start

    def chunk_range(self, k: int) -> tuple[int, int]:
        return k * self.chunk, min(self.n, (k + 1) * self.chunk)

    def completed(self) -> np.ndarray:
        """Bool per chunk: its completion record is present (an unreadable record counts as absent)."""
        return self.records()[0] != 0

    def records(self) -> tuple[np.ndarray, list[int]]:
        """The completion record of every chunk (0 where absent) and the chunks whose record is unreadable."""
        return read_records(self.arrays[COMPLETE], self.n_chunks)

    @property
    def is_complete(self) -> bool:
        return bool(self.completed().all()) and all(self.arrays[a].shape[0] == self.n for a in self.data_arrays)

    def require_complete(self) -> None:
        """Raise ``StoreError`` unless every chunk is recorded complete (readers call this first)."""
        if self._checked_complete:
            return
        done = self.completed()
        if not done.all() or any(self.arrays[a].shape[0] != self.n for a in self.data_arrays):
            raise StoreError(
                f"{self.location} is incomplete ({int(done.sum())} of {self.n_chunks} chunks written): "
                f"finish it with `{self.repair_command()}`"
            )
        self._checked_complete = True

    def nbytes_on_disk(self) -> int:
        return self.location.nbytes()

    def summary(self) -> dict[str, Any]:
        """What ``wavinv info`` prints (JSON-serialisable)."""
        done = self.completed()
        space = self.space
        scales: dict[str, int] = {}
        for p in space:
            scales[p.scale] = scales.get(p.scale, 0) + 1
        gen = self.generator
        return {
            "path": str(self.location),
            "kind": "store",
            "generator": {k: gen[k] for k in ("name", "version", "spec", "sample_rate", "n_samples")},
            "space": {"n_params": len(space), "scales": scales, "names": space.names, "fingerprint": space.fingerprint},
            "n": self.n,
            "seed": self.seed,
            "sampling": self.sampling,
            "chunk": self.chunk,
            "chunks_complete": int(done.sum()),
            "n_chunks": self.n_chunks,
            "complete": bool(done.all()),
            "clip_seconds": self.n_samples / self.sample_rate,
            "waveform_dtype": self.meta["waveform_dtype"],
            "bytes_on_disk": self.nbytes_on_disk(),
            "bytes_decoded": self.n * (self.n_samples * WAVEFORM_DTYPE.itemsize * self.keeps_waveforms + 2 * 8 * len(space) + 8),
            "waveforms": self.keeps_waveforms,
            "feature_caches": [
                {"key": c.key, "grid": list(c.grid), "picture": c.picture, "chunks_current": int(c.current().sum())}
                for c in self.feature_caches().values()
            ],
            "frontend": self.frontend_config,
            "fingerprint": self.fingerprint,
            "wavinv_version": self.meta["wavinv_version"],
            "created": self.meta["created"],
            "splits": {name: int((split_of(np.arange(self.n)) == i).sum()) for i, name in enumerate(SPLITS)},
        }

    def __repr__(self) -> str:
        return f"Store({str(self.location)!r}, {self.generator['name']} v{self.generator['version']}, n={self.n}, seed={self.seed})"

    # -- reading -------------------------------------------------------------------
    def split_indices(self, split: str | None = None) -> np.ndarray:
        """Sorted row indices of a split (``None``: every row)."""
        return split_ids(self.n, split)

    def ids(self, split: str | None = None) -> np.ndarray:
        self.require_complete()
        return self.read_rows("id", self.split_indices(split))

    def params(self, split: str | None = None) -> np.ndarray:
        """Natural-unit parameters ``(n_split, P)``."""
        self.require_complete()
        return self.read_rows("params", self.split_indices(split))

    def params_unit(self, split: str | None = None) -> np.ndarray:
        """Unit-scale parameters ``(n_split, P)``: the ``y`` of every estimator."""
        self.require_complete()
        return self.read_rows("params_unit", self.split_indices(split))

    def waveforms(self, split: str | None = None) -> LazyArray:
        """Lazy ``(n_split, T)`` float32 clips; reads whole chunks and selects rows.

        A store without waveforms re-renders the rows asked for with its generator (``attach``).
        """
        self.require_complete()
        idx = self.split_indices(split)
        return LazyArray(len(idx), (self.n_samples,), WAVEFORM_DTYPE, lambda rows: self.clips(idx[rows]))

    def clips(self, rows: np.ndarray) -> np.ndarray:
        """Clips of ``rows`` (sorted global indices): read, or re-rendered by a store without waveforms."""
        return self.read_rows("waveform", rows) if self.keeps_waveforms else self._rendered(rows)

    def batches(
        self,
        split: str | None = None,
        batch_size: int = 64,
        *,
        shuffle: bool = False,
        seed: int = 0,
        window: int = 4,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(ids, waveforms, y_unit)`` over a split, ``batch_size`` rows at a time.

        The split is read ``window`` chunks at a time, the next window decoding in
        the background while the current one is consumed, so memory stays near
        two windows of decoded chunks. ``shuffle`` permutes the chunk order and the
        rows inside each window (seeded by ``seed``). Spectrogram batches:
        ``wavinv.pictures.spectrogram_batches``.
        """
        idx = self.batch_rows(split, batch_size, window)
        rng = np.random.default_rng(seed)
        chunks = np.arange(self.n_chunks)
        if shuffle:
            chunks = rng.permutation(chunks)
        windows = [chunks[w : w + window] for w in range(0, len(chunks), window)]
        loaded = self._prefetched(windows, idx, rng if shuffle else None)
        with contextlib.closing(loaded):  # stopping early stops the prefetch thread too
            yield from _rebatched(loaded, batch_size)

    def batch_rows(self, split: str | None, batch_size: int, window: int) -> np.ndarray:
        """The rows of ``split`` that ``batches`` reads; ``InputError`` for a ``batch_size`` or ``window`` below 1,
        ``StoreError`` for an incomplete store."""
        if int(batch_size) < 1 or int(window) < 1:
            raise InputError(f"batch_size and window must be >= 1, got {batch_size}, {window}")
        self.require_complete()
        return self.split_indices(split)

    def _prefetched(self, windows: list[np.ndarray], idx: np.ndarray, rng) -> Iterator[tuple[tuple[np.ndarray, ...], bool]]:
        """``((rows, waveforms, params_unit), is the last)`` of the split rows ``idx`` in each window of chunks, in order.

        The next window decodes in a background thread while this one is used.
        ``rng`` permutes the rows inside each window (None: chunk order).
        """

        def submit(ks: np.ndarray):
            rows = self._window_rows(ks, idx)
            order = None if rng is None else rng.permutation(len(rows))  # drawn here, in window order
            return prefetch.submit(self._load_window, ks, rows, order)

        with ThreadPoolExecutor(1, thread_name_prefix="wavinv-prefetch") as prefetch:
            loading = submit(windows[0]) if windows else None
            for i in range(len(windows)):
                data = loading.result()
                if i + 1 < len(windows):
                    loading = submit(windows[i + 1])
                yield data, i + 1 == len(windows)

    def _window_rows(self, ks: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The split rows ``idx`` inside chunks ``ks``, in chunk order."""
        return np.concatenate([idx[np.searchsorted(idx, s) : np.searchsorted(idx, e)] for s, e in map(self.chunk_range, ks)])

    def _load_window(self, ks: np.ndarray, rows: np.ndarray, order: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """``(rows, waveforms, params_unit)`` of ``rows`` (inside chunks ``ks``), permuted by ``order``."""
        bounds = [self.chunk_range(int(k)) for k in ks]
        dest = None if order is None else np.argsort(order)  # where each row lands
        out = [rows if order is None else rows[order]]
        for name in ("waveform", "params_unit"):
            if name not in self.arrays:  # re-rendered, sorted, then put in the rows' order
                ordered = np.sort(out[0])
                out.append(self._rendered(ordered)[np.searchsorted(ordered, out[0])])
                continue
            arr = self.arrays[name]
            if len(ks) > 1 and np.all(np.diff(ks) == 1):  # consecutive chunks: one read, decoded in parallel
                parts = [self.read_span(arr, bounds[0][0], bounds[-1][1])]
                spans = [(bounds[0][0], bounds[-1][1])]
            else:
                parts = list(_reader_pool().map(lambda b: self.read_span(arr, *b), bounds))
                spans = bounds
            if order is None and len(parts) == 1 and len(rows) == spans[0][1] - spans[0][0]:
                out.append(parts[0])  # every row of the read, in order: no copy at all
                continue
            data = np.empty((len(rows), *arr.shape[1:]), dtype=arr.dtype)
            offset = 0
            for part, (s, e) in zip(parts, spans):  # rows come grouped by span, in span order
                m = int(np.count_nonzero((rows >= s) & (rows < e)))
                local = rows[offset : offset + m] - s
                if order is None:  # in place, one copy
                    np.take(part, local, axis=0, out=data[offset : offset + m], mode="clip")  # "clip": unbuffered
                else:
                    data[dest[offset : offset + m]] = part[local]
                offset += m
            out.append(data)
        return tuple(out)

    def read_rows(self, name, rows: np.ndarray, cache: _ChunkCache | None = None) -> np.ndarray:
        """Rows ``rows`` (sorted global indices) of array ``name``, decoding each touched chunk once.

        ``name`` may also be a zarr array of the store (a feature cache's, with its
        own ``cache`` of decoded chunks). Unlike the split readers it does not
        require a complete store (``verify`` uses it).
        """
        if isinstance(name, str) and name not in self.arrays:
            raise StoreError(f"{self.location} keeps no {name} array")
        arr = self.arrays[name] if isinstance(name, str) else name
        cache = self._caches[name] if isinstance(name, str) else cache or _ChunkCache(_CACHE_CHUNKS)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows[0] < 0 or rows[-1] >= self.n):
            raise IndexError(f"row out of range for {self.n} rows")
        out = np.empty((len(rows), *arr.shape[1:]), dtype=arr.dtype)
        if not len(rows):
            return out
        ks = rows // self.chunk
        bounds = np.flatnonzero(np.diff(ks)) + 1
        starts, stops = np.r_[0, bounds], np.r_[bounds, len(rows)]
        blocks = {int(k): cache.get(int(k)) for k in ks[starts]}
        needed = [k for k, b in blocks.items() if b is None]

        def read(k: int) -> np.ndarray:
            return self.read_span(arr, *self.chunk_range(k))

        # one chunk per read, several at once: zarr decodes them in parallel and no chunk is copied to be cached
        for k, block in zip(needed, map(read, needed) if len(needed) < 2 else _reader_pool().map(read, needed)):
            blocks[k] = block
        for s, e in zip(starts, stops):
            k = int(ks[s])
            local = rows[s:e] - k * self.chunk
            if local[-1] - local[0] == e - s - 1:  # a contiguous run: a plain copy
                out[s:e] = blocks[k][local[0] : local[-1] + 1]
            else:
                np.take(blocks[k], local, axis=0, out=out[s:e], mode="clip")  # "clip": unbuffered
        for k in list(blocks)[-cache.capacity :]:
            cache.put(k, blocks[k])
        return out

    def read_span(self, arr, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo..hi - 1`` of ``arr`` (one of the store's zarr arrays), decoded; ``StoreError`` naming the
        repair when a chunk file is missing or damaged.

        Every read of a store's arrays decodes its chunks here (``read_rows``,
        ``batches``), so wrapping this method on an instance shows what a reader
        decodes, and how much at once (the tests bound ``batches``' memory so).
        """
        # a missing chunk file would read back as its fill value (NaN, -1): refuse it, naming the chunk
        for k in range(lo // self.chunk, -(-hi // self.chunk)):
            key = self.chunk_key(arr, k)
            if not self.location.exists(key):
                raise StoreError(f"{self.location}: chunk file {key} (samples {self.chunk_range(k)[0]}..{self.chunk_range(k)[1] - 1}) is missing; repair with `{self._repair_for(arr)}`")
        try:
            return arr[lo:hi]
        except Exception as e:  # checksum or codec failure: the data on disk is damaged
            raise StoreError(
                f"{self.location}: {arr.path} rows {lo}..{hi - 1} cannot be read ({type(e).__name__}: {e}); repair with `{self._repair_for(arr)}`"
            ) from e

    def _repair_for(self, arr) -> str:
        """The command that rewrites a damaged chunk of ``arr``: ``wavinv cache`` for a feature cache's, else ``generate``."""
        if arr.path.startswith(FEATURES + "/"):
            return self.cache_command(self.feature_caches()[arr.path.split("/")[1]].grid)
        return self.repair_command()


def same_generator(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two generator identities describe the same generator (however it was loaded: the spec does not count)."""
    from .generators import identity_differences

    return not identity_differences(a, b, "the first", "the second")


def content_fingerprint(identity: dict[str, Any], seed: int, sampling: str, n: int) -> str:
    """16 hex digits identifying a store's content (the generator spec string does not count)."""
    ident = {k: v for k, v in identity.items() if k != "spec"}
    text = json.dumps({"generator": ident, "seed": int(seed), "method": sampling, "n": int(n), "format": FORMAT_VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]

