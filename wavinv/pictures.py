"""A store's clips as spectrograms: the lazy view estimators read, and the module that pictures a store's clips.

The store (``wavinv.store``) reads and writes clips, parameters and pooled
feature rows; it computes no spectrogram. This module sits above it and the
frontend:

- ``store_picture(store, generator=None)``: the module that pictures the store's
  clips (wavinv's ``Spectrogram``, or the generator's own function), as its
  metadata records it;
- ``store_spectrograms(store, split)``: lazy ``(n_split, F, T)`` dB spectrograms
  computed on the fly from the clips (``Pictures``), which also offer the rows'
  pooled features from the store's feature cache;
- ``spectrogram_batches(store, split, batch_size)``: ``store.batches`` with each
  batch's clips pictured.

torch is imported only when spectrograms are computed.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import numpy as np

from .errors import StoreError
from .generators import recorded_generator
from .lazy import LazyArray
from .picture import picture_for
from .store import FEATURES_DTYPE, Store

__all__ = ["Pictures", "spectrogram_batches", "store_picture", "store_spectrograms"]

log = logging.getLogger(__name__)


def store_picture(store: Store, generator=None):
    """The module that pictures ``store``'s clips: wavinv's ``Spectrogram``, or the generator's own function.

    A store made by a generator with a ``spectrogram`` function records
    ``{"kind": "generator", ...}``: its pictures need the generator, which is
    imported only when named (``generator``: an object or a spec; None loads
    a built-in one), and is checked to still draw the recorded picture.
    """
    cfg = store.frontend_config
    if cfg is None:
        raise StoreError(f"{store.location} records no frontend: pass frontend=...")
    gen = None
    if cfg.get("kind") == "generator":
        gen = recorded_generator(store.generator, generator, str(store.location), StoreError)
    return picture_for(cfg, gen, str(store.location), StoreError)


def _picture_module(store: Store, frontend):
    """``frontend`` as a module: the store's own picture (None), a config dict's, or the module given."""
    if frontend is None:
        return store_picture(store)
    if isinstance(frontend, dict):
        return picture_for(frontend, None, str(store.location), StoreError)
    return frontend


def store_spectrograms(store: Store, split: str | None = None, frontend=None, device=None, batch_size: int | None = None, clips=None) -> "Pictures":
    """Lazy ``(n_split, F, T)`` dB spectrograms of a store's split, computed on the fly from its clips.

    ``frontend``: a config dict or ``Spectrogram`` module (or ``store_picture(store, generator)``); default the store's.
    The result also offers the rows' pooled features from a feature cache (``Pictures.pooled``).
    ``clips``: the split's clips rendered as they are read (``clips.RenderedClips``, its ids may go past
    the store's end) instead of the store's.
    """
    store.require_complete()
    idx = store.split_indices(split) if clips is None else clips.ids
    return Pictures(store, idx, _picture_module(store, frontend), device, batch_size, clips)


def spectrogram_batches(
    store: Store,
    split: str | None = None,
    batch_size: int = 64,
    *,
    shuffle: bool = False,
    seed: int = 0,
    device=None,
    frontend=None,
    window: int = 4,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(ids, spectrograms, y_unit)`` over a split: ``store.batches`` (the same rows, order and
    memory bound) with each batch's clips pictured by ``frontend`` (default the store's) on ``device``."""
    from . import frontend as fe  # torch is imported only when spectrograms are computed

    store.batch_rows(split, batch_size, window)  # refuses what store.batches refuses, before the frontend is built
    module = _picture_module(store, frontend)
    with contextlib.closing(store.batches(split, batch_size, shuffle=shuffle, seed=seed, window=window)) as batches:
        for ids, waves, y in batches:
            yield ids, fe.spectrogram(waves, module, device=device), y


class Pictures(LazyArray):
    """Lazy dB spectrograms of some rows of a store, which also offer those rows' pooled features.

    Indexing computes spectrograms from the clips (read, or re-rendered by a store
    without waveforms, or those of ``clips``, a ``clips.RenderedClips`` of the ids
    ``idx``, which also renders blocks ahead: ``read_blocks``). ``pooled(grid)``
    gives the rows pooled to ``grid`` from the store's feature cache of this
    picture, so estimators that pool (``models.features.iter_pooled``) never
    compute a spectrogram.
    """

    def __init__(self, store: Store, idx: np.ndarray, module, device=None, batch_size: int | None = None, clips=None):
        self.store, self.idx, self.module, self.device, self.batch_size, self.clips = store, idx, module, device, batch_size, clips
        super().__init__(len(idx), module.output_shape, np.float32, self._pictures)

    def _pictured(self, waves: np.ndarray) -> np.ndarray:
        from . import frontend as fe  # torch is imported only when spectrograms are computed

        return fe.spectrogram(waves, self.module, self.batch_size, self.device)

    def _pictures(self, rows: np.ndarray) -> np.ndarray:
        return self._pictured(self.store.clips(self.idx[rows]) if self.clips is None else self.clips[rows])

    def read_blocks(self, blocks: list[np.ndarray]) -> Iterator[np.ndarray]:
        """The spectrograms of each of ``blocks`` in turn; rendered clips are rendered ahead (``lazy.read_blocks``)."""
        if self.clips is None:
            yield from map(self.__getitem__, blocks)
            return
        with contextlib.closing(self.clips.read_blocks(blocks)) as waves:
            yield from map(self._pictured, waves)

    def pooled(self, grid: tuple[int, ...]) -> LazyArray | None:
        """The rows pooled to ``grid`` ``(n, prod(grid))`` from a complete, current cache; None when there is none.

        A store without waveforms has no other way to them: then a missing cache is
        a ``StoreError`` naming the command that builds it.
        """
        if len(self.idx) and self.idx.max() >= self.store.n:  # rendered samples past the store's end: pooled from their pictures
            return None
        cfg = self.module.config()
        cache = self.store.feature_cache(cfg, tuple(grid))
        if cache is None:
            if not self.store.keeps_waveforms and self.clips is None:
                have = ", ".join(f"{c.label} of {c.picture.get('kind')}" for c in self.store.feature_caches().values()) or "none"
                raise StoreError(
                    f"{self.store.location} keeps no waveforms and has no complete feature cache of this picture pooled to "
                    f"{'x'.join(map(str, grid))} (caches: {have}): build it with `{self.store.cache_command(tuple(grid))}`"
                )
            return None
        log.info("reading %s features from the cache %s", "x".join(map(str, grid)), cache.key)
        return LazyArray(len(self.idx), (int(np.prod(grid)),), FEATURES_DTYPE, lambda rows: cache.read_rows(self.idx[rows]))

    def take(self, indices: np.ndarray) -> "Pictures":
        """A lazy view of some rows that keeps their cached features (sorted ``indices``; others give a plain view)."""
        indices = np.asarray(indices, dtype=np.int64)
        if np.any(np.diff(indices) < 0):
            return super().take(indices)
        clips = None if self.clips is None else self.clips.take(indices)
        return Pictures(self.store, self.idx[indices], self.module, self.device, self.batch_size, clips)
