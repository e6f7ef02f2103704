"""Row-addressable arrays that compute or read their rows on demand.

Estimators take ``X`` as a numpy array *or* a ``LazyArray`` (for example a store's
waveforms, or spectrograms computed on the fly), and walk it with
``iter_batches`` so memory stays bounded by the batch size, not the data set.
A lazy array that can prepare rows ahead of their reader (clips rendered in
worker processes: ``wavinv.clips``) offers ``read_blocks(blocks)``; readers
that know their next blocks call ``read_blocks(X, blocks)``, which uses it.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np

__all__ = ["LazyArray"]


class LazyArray:
    """A read-only array ``(n, *row_shape)`` whose rows come from ``read(indices)``.

    ``read`` receives a sorted int64 index array and returns ``(len(indices), *row_shape)``.
    Indexing with an int, a slice or an index array returns a numpy array.
    """

    def __init__(self, n: int, row_shape: tuple[int, ...], dtype, read: Callable[[np.ndarray], np.ndarray]):
        self._n = int(n)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self._read = read

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        if isinstance(key, slice):
            idx = np.arange(self._n)[key]
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = np.where(idx < 0, idx + self._n, idx).astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= self._n):
                raise IndexError(f"index out of range for {self._n} rows")
        if idx.size == 0:
            return np.empty((0, *self.row_shape), dtype=self.dtype)
        order = np.argsort(idx, kind="stable")
        rows = np.asarray(self._read(idx[order]), dtype=self.dtype)
        out = np.empty_like(rows)
        out[order] = rows
        return out

    def take(self, indices: np.ndarray) -> "LazyArray":
        """A lazy view of some rows (nothing is read)."""
        indices = np.asarray(indices, dtype=np.int64)
        return LazyArray(len(indices), self.row_shape, self.dtype, lambda idx: self[indices[idx]])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"LazyArray(shape={self.shape}, dtype={self.dtype})"


def n_rows(X) -> int:
    return len(X)


def read_blocks(X, blocks: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The rows of each of ``blocks`` (index arrays into ``X``) in turn: ``X.read_blocks`` when ``X`` has it
    (it may prepare the next blocks while this one is used), else ``X[block]`` one block at a time.

    Close the iterator (``contextlib.closing``) when stopping early, so work ahead is cancelled.
    """
    ahead = getattr(X, "read_blocks", None)
    if ahead is not None:
        return ahead(blocks)
    return (X[b] if isinstance(X, np.ndarray) else np.asarray(X[b]) for b in blocks)


def iter_batches(X, batch_size: int, indices: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(row_indices, rows)`` of ``X`` (numpy or lazy) ``batch_size`` rows at a time."""
    idx = np.arange(len(X)) if indices is None else np.asarray(indices, dtype=np.int64)
    blocks = [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]
    with contextlib.closing(read_blocks(X, blocks)) as rows:
        yield from zip(blocks, rows)


def as_array(X, dtype=np.float32) -> np.ndarray:
    """Materialise ``X`` (only for data known to be small)."""
    return np.asarray(X[:] if isinstance(X, LazyArray) else X, dtype=dtype)


def clip_batch(waves, n_samples: int, what: str = "the frontend") -> tuple["np.ndarray | LazyArray", bool]:
    """``(clips (N, n_samples), single)``: one clip ``(T,)`` becomes a batch of one; other shapes are an ``InputError``."""
    from .errors import InputError

    single = False
    if not isinstance(waves, LazyArray):
        waves = np.asarray(waves)
        single = waves.ndim == 1
        if single:
            waves = waves[None]
    if waves.ndim != 2:
        raise InputError(f"waveforms must have shape (N, T) or (T,), got {tuple(waves.shape)}")
    if waves.shape[1] != n_samples:
        raise InputError(f"clips have {waves.shape[1]} samples, {what} expects {n_samples}")
    return waves, single
