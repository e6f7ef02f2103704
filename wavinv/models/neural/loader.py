"""Training data for the neural inverters: rows of ``X`` read in contiguous blocks, shuffled in a bounded buffer, read ahead in a thread."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Iterator

import numpy as np
import torch

from ...lazy import read_blocks

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


class BlockLoader:
    """Batches of rows of ``X`` (numpy or lazy) with their ``y``, read ahead in a thread.

    Rows are read as contiguous blocks of ``block_size`` (fast for chunked
    stores); for training, the block order is shuffled per epoch and rows are
    shuffled inside a buffer of ``buffer_blocks`` blocks. Memory is bounded by
    ``(buffer_blocks * block_size + prefetch * batch_size)`` rows, whatever the
    size of ``X``, plus the blocks an ``X`` that prepares rows ahead holds (clips
    rendered in worker processes: ``2 * workers`` blocks). An epoch's blocks are
    known when it starts, so such an ``X`` is handed them all at once
    (``lazy.read_blocks``). ``wait_s`` accumulates the time the consumer waited for data.
    """

    def __init__(self, X, y: np.ndarray, blocks: list[np.ndarray], batch_size: int, buffer_blocks: int = 4, prefetch: int = 4, pin: bool = False):
        self.X, self.y, self.blocks = X, y, blocks
        self.batch_size, self.buffer_blocks, self.prefetch, self.pin = int(batch_size), int(buffer_blocks), int(prefetch), pin
        self.wait_s = 0.0

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def _plan(self, rng: np.random.Generator | None) -> Iterator[list[np.ndarray]]:
        """Groups of blocks to read together, and the row order inside each group."""
        order = rng.permutation(len(self.blocks)) if rng is not None else np.arange(len(self.blocks))
        for s in range(0, len(order), self.buffer_blocks):
            yield [self.blocks[i] for i in order[s : s + self.buffer_blocks]]

    def _produce(self, rng, out: queue.Queue, stop: threading.Event) -> None:
        try:
            groups = list(self._plan(rng))
            with contextlib.closing(read_blocks(self.X, [rows for group in groups for rows in group])) as reads:
                self._batches(groups, reads, rng, out, stop)
        except BaseException as e:  # re-raised in the consumer
            out.put(e)
        finally:
            out.put(None)

    def _batches(self, groups: list[list[np.ndarray]], reads, rng, out: queue.Queue, stop: threading.Event) -> None:
        """Put the batches of ``groups`` (their rows' data coming from ``reads``, block by block) on ``out``."""
        pending_x: list[np.ndarray] = []
        pending_y: list[np.ndarray] = []
        for group in groups:
            xs = [np.asarray(next(reads), dtype=np.float32) for _ in group]
            ys = [self.y[rows] for rows in group]
            x, y = np.concatenate(pending_x + xs), np.concatenate(pending_y + ys)
            if rng is not None:
                perm = rng.permutation(len(x))
                x, y = x[perm], y[perm]
            n_full = len(x) // self.batch_size * self.batch_size
            for s in range(0, n_full, self.batch_size):
                if stop.is_set():
                    return
                out.put(self._tensors(x[s : s + self.batch_size], y[s : s + self.batch_size]))
            pending_x, pending_y = [x[n_full:]], [y[n_full:]]
        rest = pending_x[0] if pending_x else np.empty(0)
        # a last batch of one row would break batch normalisation in training
        if len(rest) > (1 if rng is not None else 0):
            out.put(self._tensors(rest, pending_y[0]))

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        tx, ty = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        return (tx.pin_memory(), ty.pin_memory()) if self.pin else (tx, ty)

    def iterate(self, rng: np.random.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass; ``rng`` shuffles (training), ``None`` keeps row order (evaluation)."""
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(rng, out, stop), daemon=True)
        worker.start()
        try:
            while True:
                t0 = time.perf_counter()
                item = out.get()
                self.wait_s += time.perf_counter() - t0
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    out.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()


def blocks_of(indices: np.ndarray, block_size: int) -> list[np.ndarray]:
    return [indices[s : s + block_size] for s in range(0, len(indices), block_size)]


def split_blocks(n: int, block_size: int, validation_fraction: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Whole blocks held out for validation, chosen by the seed (contiguous reads stay contiguous)."""
    size = min(block_size, max(1, int(np.ceil(n * validation_fraction))))
    blocks = blocks_of(np.arange(n), size)
    n_val = max(1, int(round(len(blocks) * validation_fraction)))
    if len(blocks) < 2:
        return [], []
    is_val = np.zeros(len(blocks), dtype=bool)
    is_val[np.random.default_rng([seed, 7]).choice(len(blocks), min(n_val, len(blocks) - 1), replace=False)] = True
    return [b for b, v in zip(blocks, is_val) if not v], [b for b, v in zip(blocks, is_val) if v]
