"""The dataset store: parameters in, audio out, linked by ids, in one Zarr v3 group.

Layout of a store directory (a Zarr v3 group)::

    id           int64    (N,)       sample ids 0..N-1
    params       float64  (N, P)     natural units, columns in space order
    params_unit  float64  (N, P)     the same, unit scale (``space.to_unit(params)``)
    waveform     float32  (N, T)     the generator's clips
    complete     uint64   (n_chunks,) per chunk: 0 = not written, else a digest of its data

Every data array is chunked along samples (``chunk`` rows per chunk) and stored
with Blosc lz4 + byte shuffle and a CRC32C checksum, so a damaged chunk fails on
read. ``complete[k]`` is written only after chunk ``k`` of every array has been
written, and holds a 64-bit digest (SHA-256) of that chunk's decoded data: it is
the record of progress (chunk files alone prove nothing) and lets ``verify``
check that the record matches the data. The group attribute ``wavinv`` holds
the generator's identity, seed, sampling (key ``method``), sizes, the default frontend
configuration, the wavinv version and the creation time.

Reading never loads the whole store: ``waveforms()``/``spectrograms()`` are
``LazyArray`` views that read whole chunks, and ``batches()`` walks a split a few
chunks at a time. Splits are a hash of the id (80/10/10), so every reader gets
the same split, and an id keeps its split when the store grows. Spectrograms are
computed on the fly by the frontend; the store holds no spectrogram cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
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

__all__ = ["SPLITS", "Store", "is_store", "open_store"]

log = logging.getLogger(__name__)

FORMAT = "wavinv-store"
FORMAT_VERSION = 1
WAVEFORM_DTYPE = np.dtype("float32")
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


def chunk_digest(ids: np.ndarray, params: np.ndarray, params_unit: np.ndarray, waveform: np.ndarray) -> int:
    """The completion record of one chunk: the first 64 bits of the SHA-256 of its data (never 0).

    SHA-256 (hardware-accelerated on current CPUs) runs at about twice BLAKE2b's speed here.
    """
    h = hashlib.sha256()
    for a, dtype in ((ids, "<i8"), (params, "<f8"), (params_unit, "<f8"), (waveform, WAVEFORM_DTYPE.newbyteorder("<"))):
        h.update(np.ascontiguousarray(a, dtype=dtype))  # no copy when already contiguous little-endian
    return int.from_bytes(h.digest()[:8], "little") or 1


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


class Store:
    """A wavinv dataset store opened read-only (``generate`` writes through its own handle)."""

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
            self.arrays = {name: self.group[name] for name in (*ARRAYS, COMPLETE)}
        except (KeyError, ValueError, TypeError, OSError) as e:
            raise StoreError(f"{self.location}: damaged store metadata: {type(e).__name__}: {e} ({_NO_REPAIR})") from None
        problem = store_meta_problem(self.meta, FORMAT_VERSION)
        if problem:
            raise StoreError(f"{self.location}: damaged store metadata in zarr.json: {problem} ({_NO_REPAIR})")
        problem = index_memory_problem(self.n)
        if problem:
            raise StoreError(f"{self.location} claims {self.n} samples: {problem}")
        self._check_arrays()
        self._caches = {name: _ChunkCache(_CACHE_CHUNKS) for name in ARRAYS}
        self._checked_complete = False

    def _check_arrays(self) -> None:
        """Every array is chunked as the metadata says and has the row shape it must have."""
        rows = {"id": (), "params": (len(self.space),), "params_unit": (len(self.space),), "waveform": (self.n_samples,)}
        for name, row in rows.items():
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
        return shlex.join(["wavinv", "generate", "--generator", spec, "--n", str(self.n), "--seed", str(self.seed), "--sampling", self.sampling, "--out", str(self.location)])

    def chunk_key(self, name: str, k: int) -> str:
        """The key of chunk ``k`` of array ``name`` below the store (``"waveform/c/3/0"``)."""
        arr = self.arrays[name]
        return f"{name}/{arr.metadata.encode_chunk_key((k,) + (0,) * (arr.ndim - 1))}"

    def read_chunk(self, k: int) -> tuple[tuple[np.ndarray, ...] | None, str | None]:
        """``(data of every array, None)`` for chunk ``k``, or ``(None, why not)``: a missing or damaged chunk file."""
        s, e = self.chunk_range(k)
        data = []
        for name in ARRAYS:
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

    def chunk_range(self, k: int) -> tuple[int, int]:
        return k * self.chunk, min(self.n, (k + 1) * self.chunk)

    def completed(self) -> np.ndarray:
        """Bool per chunk: its completion record is present (an unreadable record counts as absent)."""
        return self.records()[0] != 0

    def records(self) -> tuple[np.ndarray, list[int]]:
        """The completion record of every chunk (0 where absent) and the chunks whose record is unreadable."""
        arr = self.arrays[COMPLETE]
        out = np.zeros(self.n_chunks, dtype=np.uint64)
        m = min(self.n_chunks, arr.shape[0])
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

    @property
    def is_complete(self) -> bool:
        return bool(self.completed().all()) and all(self.arrays[a].shape[0] == self.n for a in ARRAYS)

    def require_complete(self) -> None:
        """Raise ``StoreError`` unless every chunk is recorded complete (readers call this first)."""
        if self._checked_complete:
            return
        done = self.completed()
        if not done.all() or any(self.arrays[a].shape[0] != self.n for a in ARRAYS):
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
            "bytes_decoded": self.n * (self.n_samples * WAVEFORM_DTYPE.itemsize + 2 * 8 * len(space) + 8),
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
        if split is None:
            return np.arange(self.n, dtype=np.int64)
        if split not in SPLITS:
            raise InputError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
        return np.flatnonzero(split_of(np.arange(self.n)) == list(SPLITS).index(split)).astype(np.int64)

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
        """Lazy ``(n_split, T)`` float32 clips; reads whole chunks and selects rows."""
        self.require_complete()
        idx = self.split_indices(split)
        return LazyArray(len(idx), (self.n_samples,), WAVEFORM_DTYPE, lambda rows: self.read_rows("waveform", idx[rows]))

    def spectrograms(self, split: str | None = None, frontend=None, device=None, batch_size: int | None = None) -> LazyArray:
        """Lazy ``(n_split, F, T)`` dB spectrograms computed on the fly from the waveforms.

        ``frontend``: a config dict or ``Spectrogram`` module (or ``self.picture(generator)``); default the store's.
        """
        from . import frontend as fe  # torch is imported only when spectrograms are asked for

        module = self._frontend(frontend)
        waves = self.waveforms(split)
        return LazyArray(len(waves), module.output_shape, np.float32, lambda rows: fe.spectrogram(waves[rows], module, batch_size, device))

    def batches(
        self,
        split: str | None = None,
        batch_size: int = 64,
        features: str = "waveform",
        shuffle: bool = False,
        seed: int = 0,
        device=None,
        frontend=None,
        window: int = 4,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(ids, X, y_unit)`` over a split, ``batch_size`` rows at a time.

        The split is read ``window`` chunks at a time, the next window decoding in
        the background while the current one is consumed, so memory stays near
        two windows of decoded chunks. ``shuffle`` permutes the chunk order and the
        rows inside each window (seeded by ``seed``).
        """
        if features not in ("waveform", "spectrogram"):
            raise InputError(f"features must be 'waveform' or 'spectrogram', got {features!r}")
        if int(batch_size) < 1 or int(window) < 1:
            raise InputError(f"batch_size and window must be >= 1, got {batch_size}, {window}")
        self.require_complete()
        idx = self.split_indices(split)
        if features == "spectrogram":
            from . import frontend as fe

            module = self._frontend(frontend)
        rng = np.random.default_rng(seed)
        chunks = np.arange(self.n_chunks)
        if shuffle:
            chunks = rng.permutation(chunks)
        windows = [chunks[w : w + window] for w in range(0, len(chunks), window)]

        def submit(ks: np.ndarray):
            rows = self._window_rows(ks, idx)
            order = rng.permutation(len(rows)) if shuffle else None  # drawn here, in window order
            return prefetch.submit(self._load_window, ks, rows, order)

        def emit(rows, waves, y):
            X = waves if features == "waveform" else fe.spectrogram(waves, module, device=device)
            return rows, X, y

        carry = None
        with ThreadPoolExecutor(1, thread_name_prefix="wavinv-prefetch") as prefetch:
            loading = submit(windows[0]) if windows else None
            for i in range(len(windows)):
                data = loading.result()
                if i + 1 < len(windows):
                    loading = submit(windows[i + 1])
                pos = 0
                if carry is not None:  # complete the batch left over from the last window
                    pos = min(batch_size - len(carry[0]), len(data[0]))
                    carry = tuple(np.concatenate([c, d[:pos]]) for c, d in zip(carry, data))
                    if len(carry[0]) < batch_size and i + 1 < len(windows):
                        continue
                    yield emit(*carry)
                    carry = None
                n = len(data[0])
                stop = n if i + 1 == len(windows) else pos + (n - pos) // batch_size * batch_size
                for s in range(pos, stop, batch_size):
                    yield emit(*(d[s : min(s + batch_size, stop)] for d in data))
                if stop < n:  # copied, so the window can be let go
                    carry = tuple(d[stop:].copy() for d in data)
            if carry is not None:
                yield emit(*carry)

    def _window_rows(self, ks: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The split rows ``idx`` inside chunks ``ks``, in chunk order."""
        return np.concatenate([idx[np.searchsorted(idx, s) : np.searchsorted(idx, e)] for s, e in map(self.chunk_range, ks)])

    def _load_window(self, ks: np.ndarray, rows: np.ndarray, order: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """``(rows, waveforms, params_unit)`` of ``rows`` (inside chunks ``ks``), permuted by ``order``."""
        bounds = [self.chunk_range(int(k)) for k in ks]
        dest = None if order is None else np.argsort(order)  # where each row lands
        out = [rows if order is None else rows[order]]
        for name in ("waveform", "params_unit"):
            arr = self.arrays[name]
            if len(ks) > 1 and np.all(np.diff(ks) == 1):  # consecutive chunks: one read, decoded in parallel
                parts = [self._get(arr, name, bounds[0][0], bounds[-1][1])]
                spans = [(bounds[0][0], bounds[-1][1])]
            else:
                parts = list(_reader_pool().map(lambda b: self._get(arr, name, *b), bounds))
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

    def picture(self, generator=None):
        """The module that pictures this store's clips: wavinv's ``Spectrogram``, or the generator's own function.

        A store made by a generator with a ``spectrogram`` function records
        ``{"kind": "generator", ...}``: its pictures need the generator, which is
        imported only when named (``generator``: an object or a spec; None loads
        a built-in one), and is checked to still draw the recorded picture.
        """
        from .picture import picture_for

        cfg = self.frontend_config
        if cfg is None:
            raise StoreError(f"{self.location} records no frontend: pass frontend=...")
        gen = None
        if cfg.get("kind") == "generator":
            from .generators import recorded_generator

            gen = recorded_generator(self.generator, generator, str(self.location), same_generator, StoreError)
        return picture_for(cfg, gen, str(self.location), StoreError)

    def _frontend(self, frontend):
        if frontend is None:
            return self.picture()
        if isinstance(frontend, dict):
            from .picture import picture_for

            return picture_for(frontend, None, str(self.location), StoreError)
        return frontend

    def read_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (sorted global indices) of array ``name``, decoding each touched chunk once.

        Unlike the split readers it does not require a complete store (``verify`` uses it).
        """
        arr = self.arrays[name]
        cache = self._caches[name]
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
            return self._get(arr, name, *self.chunk_range(k))

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

    def _get(self, arr, name: str, lo: int, hi: int) -> np.ndarray:
        # a missing chunk file would read back as its fill value (NaN, -1): refuse it, naming the chunk
        for k in range(lo // self.chunk, -(-hi // self.chunk)):
            key = self.chunk_key(name, k)
            if not self.location.exists(key):
                raise StoreError(f"{self.location}: chunk file {key} (samples {self.chunk_range(k)[0]}..{self.chunk_range(k)[1] - 1}) is missing; repair with `{self.repair_command()}`")
        try:
            return arr[lo:hi]
        except Exception as e:  # checksum or codec failure: the data on disk is damaged
            raise StoreError(
                f"{self.location}: {name} rows {lo}..{hi - 1} cannot be read ({type(e).__name__}: {e}); repair with `{self.repair_command()}`"
            ) from e


def same_generator(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two generator identities describe the same generator (however it was loaded: the spec does not count)."""
    return {k: v for k, v in a.items() if k != "spec"} == {k: v for k, v in b.items() if k != "spec"}


def content_fingerprint(identity: dict[str, Any], seed: int, sampling: str, n: int) -> str:
    """16 hex digits identifying a store's content (the generator spec string does not count)."""
    ident = {k: v for k, v in identity.items() if k != "spec"}
    text = json.dumps({"generator": ident, "seed": int(seed), "method": sampling, "n": int(n), "format": FORMAT_VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]

