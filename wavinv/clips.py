"""Clips rendered while they are read, ahead of their reader, in worker processes.

A store made with ``--no-waveforms`` keeps parameters, ids and feature caches
but no clips, and a fit may ask for more clips than any store holds. Both read
``RenderedClips``: a lazy ``(n, n_samples)`` float32 array of some ids of a
store's sequence. Each id's parameters are drawn as ``generate`` draws them
(``space.sample`` under the store's seed and sampling, addressable by id, so ids
past the store's ``n`` continue it as ``generate --n`` would) and rendered by
the generator: the bytes ``generate`` stores. Indexing renders in the calling
thread; ``read_blocks(blocks)`` (what the neural training loader and
``lazy.iter_batches`` call) renders each block as one task in worker processes,
at most ``2 * workers`` blocks ahead of the reader, and yields them in order.
Every clip depends only on its own row and a block is one render call whichever
process takes it, so the bytes never depend on the number of workers.

``clip_renderer(store, generator)`` checks before any work that the generator
loads, is the store's, and renders what the store recorded (two samples
re-rendered and compared, as ``verify --rerender`` does). The ``ClipRenderer``
owns the worker processes (spawned: each loads the generator by its spec),
started at the first read ahead and stopped by ``close``. A worker that dies
mid-block (the generator crashed its process, the OOM killer) stops the reader
with a ``RenderError`` naming the sample: its block is rendered again one id at
a time in a fresh process to find it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError, RenderError, StoreError
from .generate import init_worker
from .generators import BUILTIN_GENERATORS, Generator, load_generator, portable_spec, render_checked
from .lazy import LazyArray
from .limits import int_arg
from .params import ParamSpace
from .store import WAVEFORM_DTYPE, Store, index_memory_problem, split_ids
from .verify import rerendered_errors

__all__ = ["ClipRenderer", "RenderedClips", "clip_count", "clip_renderer", "default_render_workers", "render_ids", "sequence_params_unit"]

# samples re-rendered and compared with the store before any work
_PROBE_SAMPLES = 2
# sorted ids further apart than this are drawn as separate runs of the sequence (a split's ids are a few apart)
_RUN_GAP = 64
# rows of parameters drawn at a time past a store's end (bounded memory)
_DRAW_ROWS = 1 << 16
# a worker process's generator, or why it could not be loaded
_WORKER: dict[str, Any] = {}


def default_render_workers() -> int:
    """Half the CPUs this process may use, at least one: the other half trains."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // 2)


def _sequence_params(space: ParamSpace, seed: int, sampling: str, ids: np.ndarray) -> np.ndarray:
    """Natural-unit parameters of sorted ``ids`` of the sequence ``(seed, sampling)``: those ``generate`` draws for them."""
    runs = np.split(ids, np.flatnonzero(np.diff(ids) > _RUN_GAP) + 1) if len(ids) else []
    parts = [space.sample(int(run[0]), int(run[-1]) + 1, seed, sampling)[run - run[0]] for run in runs]
    return np.concatenate(parts) if parts else np.empty((0, len(space)))


def render_ids(gen: Generator, seed: int, sampling: str, ids: np.ndarray) -> np.ndarray:
    """Clips ``(len(ids), n_samples)`` of ``ids`` (any order) of the sequence ``(seed, sampling)``, rendered as one
    batch: the bytes ``generate`` stores for them."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    clips = render_checked(gen, _sequence_params(gen.space, seed, sampling, ordered), ids=ordered).astype(WAVEFORM_DTYPE, copy=False)
    out = np.empty_like(clips)
    out[order] = clips
    return out


def sequence_params_unit(store: Store, ids: np.ndarray) -> np.ndarray:
    """Unit-scale parameters ``(len(ids), P)`` of sorted ``ids``: read for the store's own samples, drawn by id
    past its end (what ``generate --n`` would write for them)."""
    store.require_complete()
    ids = np.asarray(ids, dtype=np.int64)
    inside, beyond = ids[ids < store.n], ids[ids >= store.n]
    parts = [store.read_rows("params_unit", inside)]
    for s in range(0, len(beyond), _DRAW_ROWS):
        parts.append(store.space.to_unit(_sequence_params(store.space, store.seed, store.sampling, beyond[s : s + _DRAW_ROWS])))
    return np.concatenate(parts)


def _start_worker(counter, workers: int, spec: str) -> None:
    """Set up a render worker: the CPU share and parent-following of ``generate``'s workers, then the generator."""
    init_worker(counter, workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    try:
        _WORKER["gen"] = load_generator(spec)
    except Exception as e:  # raised by every task: a failing initializer would only break the pool, saying nothing
        _WORKER["error"] = e


def _render_task(seed: int, sampling: str, ids: np.ndarray) -> np.ndarray:
    if "error" in _WORKER:
        raise _WORKER["error"]
    return render_ids(_WORKER["gen"], seed, sampling, ids)


def _spans(ids: np.ndarray) -> str:
    """``"3..7"`` or ``"3"``: the range of some ids, for messages."""
    lo, hi = int(np.min(ids)), int(np.max(ids))
    return f"{lo}..{hi}" if hi > lo else str(lo)


class ClipRenderer:
    """Renders clips of ids of one store's sequence: in the calling thread, or ahead of a reader in worker processes.

    Made by ``clip_renderer``. ``workers=0`` renders in the reading thread. Worker
    processes load the generator by ``spec``; they start at the first
    ``read_ahead`` and stop at ``close`` (a ``ClipRenderer`` is also a context
    manager). ``rendered`` counts the clips rendered so far.
    """

    def __init__(self, gen: Generator, spec: str | None, seed: int, sampling: str, workers: int, owner: str, progress: bool = True):
        if workers and spec is None:
            raise InputError("render workers load the generator by its spec: name it by a spec, not an object, or use 0 render workers")
        self.gen, self.spec, self.seed, self.sampling, self.workers = gen, spec, int(seed), sampling, int(workers)
        self.owner, self.progress = owner, progress
        self.rendered = 0
        self._pool: ProcessPoolExecutor | None = None
        self._bar = None

    def clips(self, ids: np.ndarray) -> "RenderedClips":
        """The clips of ``ids``, lazily: rendered when read."""
        return RenderedClips(self, np.asarray(ids, dtype=np.int64))

    def split(self, n: int, split: str | None) -> "RenderedClips":
        """The clips of ``split`` among the first ``n`` ids of the sequence (a store of ``n`` samples, or one grown to ``n``)."""
        return self.clips(split_ids(n, split))

    def render(self, ids: np.ndarray) -> np.ndarray:
        """The clips of ``ids``, rendered in the calling thread."""
        clips = render_ids(self.gen, self.seed, self.sampling, ids)
        self._count(len(clips))
        return clips

    def read_ahead(self, blocks: list[np.ndarray]) -> Iterator[np.ndarray]:
        """The clips of each block of ids in turn, the next ``2 * workers`` blocks rendering meanwhile.

        Closing the iterator early cancels the blocks not yet started.
        """
        if not self.workers:
            yield from map(self.render, blocks)
            return
        pool = self._started()
        pending: deque[tuple[np.ndarray, Future]] = deque()
        try:
            for ids in blocks:
                try:
                    pending.append((ids, pool.submit(_render_task, self.seed, self.sampling, ids)))
                except BrokenProcessPool:  # a worker died before this block was handed over
                    raise self._died([b for b, _ in pending] + [ids]) from None
                if len(pending) >= 2 * self.workers:
                    yield self._result(pending)
            while pending:
                yield self._result(pending)
        finally:
            for _, fut in pending:
                fut.cancel()

    def _result(self, pending: deque) -> np.ndarray:
        """The clips of the oldest pending block (it leaves ``pending``)."""
        ids, fut = pending[0]
        try:
            clips = fut.result()
        except BrokenProcessPool:
            raise self._died([b for b, _ in pending]) from None
        pending.popleft()
        self._count(len(ids))
        return clips

    def _died(self, blocks: list[np.ndarray]) -> RenderError:
        """The error for a worker that died while ``blocks`` were rendering: each sample rendered alone to name the one that kills."""
        self.close()
        for ids in blocks:
            culprit = self._culprit(ids)
            if culprit is not None:
                return RenderError(
                    f"{self.owner}: rendering sample {culprit} killed the render worker process ({self.gen.name} crashed it or it ran out of memory): stopped"
                )
        every = np.concatenate(blocks)
        return RenderError(
            f"{self.owner}: a render worker process died while rendering samples {_spans(every)}, each of which renders alone "
            "(out of memory? fewer render workers need less): stopped"
        )

    def _culprit(self, ids: np.ndarray) -> int | None:
        """The first of ``ids`` whose render kills a fresh worker process, or None."""
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=_start_worker, initargs=(ctx.Value("i", 0), 1, self.spec)) as alone:
            for i in np.sort(ids):
                try:
                    alone.submit(_render_task, self.seed, self.sampling, np.array([i])).result()
                except BrokenProcessPool:
                    return int(i)
        return None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: workers start clean (torch and fork do not mix) and load the spec themselves
            ctx = multiprocessing.get_context("spawn")
            init = (ctx.Value("i", 0), self.workers, self.spec)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_start_worker, initargs=init)
        return self._pool

    def _count(self, n: int) -> None:
        self.rendered += n
        if self._bar is None:
            self._bar = tqdm(desc=f"render {self.gen.name}", unit="clip", disable=not self.progress, leave=False, dynamic_ncols=True)
        self._bar.update(n)

    def close(self) -> None:
        """Stop the worker processes (a block in flight finishes first) and the progress bar."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ClipRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RenderedClips(LazyArray):
    """Lazy ``(len(ids), n_samples)`` float32 clips of ``ids`` of a store's sequence, rendered by a ``ClipRenderer``."""

    def __init__(self, renderer: ClipRenderer, ids: np.ndarray):
        self.renderer, self.ids = renderer, ids
        super().__init__(len(ids), (renderer.gen.n_samples,), WAVEFORM_DTYPE, lambda rows: renderer.render(self.ids[rows]))

    def take(self, indices: np.ndarray) -> "RenderedClips":
        return RenderedClips(self.renderer, self.ids[np.asarray(indices, dtype=np.int64)])

    def read_blocks(self, blocks: list[np.ndarray]) -> Iterator[np.ndarray]:
        """The clips of each of ``blocks`` (positions in this array) in turn, rendered ahead by the renderer's workers."""
        return self.renderer.read_ahead([self.ids[np.asarray(b, dtype=np.int64)] for b in blocks])


def _worker_spec(store: Store, generator: "str | Generator | None") -> str | None:
    """The spec worker processes load: the one named (a file's made absolute), else the store's when it is built in
    (an object passed the identity check: it is that built-in, as the bench passes it), else None."""
    if isinstance(generator, str):
        return portable_spec(generator)[0]
    recorded = store.generator.get("spec")
    return recorded if recorded in BUILTIN_GENERATORS else None


def clip_renderer(store: Store, generator: "str | Generator | None" = None, workers: int | None = None, progress: bool = True) -> ClipRenderer:
    """A ``ClipRenderer`` of ``store``'s sequence, checked before any work.

    ``generator``: a spec or an object; None loads the store's recorded generator
    when it is a built-in one (``Store.attach``: a store never names code to
    import). It must load and be the store's generator (else ``GeneratorError`` or
    ``StoreError``), and re-render two of its samples as the store holds them
    (their clips or, without waveforms, their pooled features): else ``StoreError``.
    ``workers``: render processes (None: ``default_render_workers()``; 0: render in
    the reading thread); they load the generator by its spec, so a generator object
    renders in the reading thread unless it is the store's built-in one.
    """
    workers = None if workers is None else int_arg("render_workers", workers, 0)
    gen = store.attach(generator)
    spec = _worker_spec(store, generator)
    if workers is None:
        workers = default_render_workers() if spec is not None else 0
    probe = np.arange(min(_PROBE_SAMPLES, store.n))
    _, err, atol, what = rerendered_errors(store, gen, probe)
    if (err > atol).any():
        raise StoreError(
            f"{store.location}: generator {gen.name!r} does not render the clips the store was made with (samples {_spans(probe)}: "
            f"max abs error{what} {err.max():.3g}): name the generator that made it"
        )
    return ClipRenderer(gen, spec, store.seed, store.sampling, workers, str(store.location), progress)


def clip_count(store: Store, n: int) -> int:
    """``n`` checked as a number of clips to train from: at least the store's (they are among them), and indexable."""
    n = int_arg("render_clips", n, 1)
    if n < store.n:
        raise InputError(f"render_clips={n} is fewer than the {store.n} samples {store.location} holds: it counts every clip, the store's included")
    problem = index_memory_problem(n)
    if problem:
        raise InputError(f"render_clips={n}: {problem}")
    return n
