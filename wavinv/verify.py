"""``verify``: is a store whole? Every chunk read (checksums), ids, completion records, feature caches, re-renders.

Used by ``wavinv verify``; it reports what is wrong rather than raising, and
raises ``StoreError`` only when the path is not a store at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .errors import StoreError
from .generators import Generator, recorded_generator, render_checked
from .limits import int_arg
from .store import WAVEFORM_DTYPE, FeatureCache, Store, chunk_digest, features_digest, open_store

__all__ = ["VerifyReport", "rerendered_errors", "verify"]


@dataclass
class VerifyReport:
    """What ``verify`` found. ``ok`` only when the store is whole."""

    path: str
    n: int
    n_chunks: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rerendered: list[int] = field(default_factory=list)
    max_abs_error: float | None = None
    repair: str | None = None  # the command that repairs the store, when it is not whole

    @property
    def ok(self) -> bool:
        return not self.problems


# largest difference between a stored and a re-rendered clip still counted as the same (-100 dBFS):
# batch composition may move the last bits of some renderers' arithmetic
RERENDER_ATOL = 1e-5
# the same for the pooled dB features of a store without waveforms (what re-rendered clips are compared with there)
RERENDER_FEATURES_ATOL_DB = 0.01


def _spans(values: list[int] | np.ndarray) -> str:
    """``[1, 2, 3, 7]`` -> ``"1..3, 7"`` (first few spans)."""
    values = sorted(int(v) for v in values)
    spans: list[str] = []
    lo = prev = values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        spans.append(f"{lo}..{prev}" if prev > lo else f"{lo}")
        if v is not None:
            lo = prev = v
    return ", ".join(spans[:8]) + (", ..." if len(spans) > 8 else "")


def verify(
    path: str | os.PathLike,
    rerender: int = 0,
    generator: str | Generator | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> VerifyReport:
    """Read every chunk of every array (checksums), check ids and completion records, and every feature cache.

    ``rerender=K`` re-renders ``K`` random samples (``seed``) with ``generator``
    and compares them with the stored ones (in a store without waveforms, their
    pooled features with every complete cache's); ``generator`` may be left out only
    when the store's recorded generator is a built-in one (a store never causes
    an import the user did not name). Raises ``StoreError`` only when ``path``
    is not a store at all, ``GeneratorError`` when the generator is not given or does not match.
    """
    rerender = int_arg("rerender", rerender, 0)
    seed = None if seed is None else int_arg("seed", seed, 0)
    store = open_store(path)
    # the generator is loaded before any reading: a store never names code to import (built-ins aside)
    gen = recorded_generator(store.generator, generator, str(store.location), StoreError) if rerender else None
    rep = VerifyReport(str(store.location), store.n, store.n_chunks)
    for name, (shape, expected) in store.shape_problems().items():
        rep.problems.append(f"{name} has shape {shape}, expected {expected}: run `wavinv generate` again to finish growing it")
    if rep.problems:
        return rep
    records, damaged = store.records()
    for k in damaged:
        rep.problems.append(f"chunk {k}: completion record cannot be read (checksum mismatch)")
    ids, readable = _check_chunks(store, records, damaged, rep, progress)
    for cache in store.feature_caches().values():
        _check_cache(store, cache, records, rep)
    _check_ids(store, ids, readable, rep)
    links = _check_files(store, rep)
    if rep.problems and not links:
        rep.repair = store.repair_command()
    if rerender:
        _rerender(store, rep, rerender, gen, seed, readable & (records != 0))
    return rep


def _check_chunks(store: Store, records: np.ndarray, damaged: list[int], rep: VerifyReport, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read every chunk (checksums) and compare it with its completion record; ``(ids read, -1 elsewhere; bool per readable chunk)``.

    A chunk without a completion record, written or not, counts as not complete
    (one problem for them all); a missing chunk file is damage only when the
    chunk is recorded complete.
    """
    ids = np.full(store.n, -1, dtype=np.int64)
    readable = np.zeros(store.n_chunks, dtype=bool)
    incomplete: list[int] = []
    for k in tqdm(range(store.n_chunks), desc=f"verify {store.location.name}", unit="chunk", disable=not progress):
        s, e = store.chunk_range(k)
        where = f"chunk {k} (samples {s}..{e - 1})"
        data, why = store.read_chunk(k)
        if data is None and (records[k] or "missing" not in why):
            rep.problems.append(f"{where}: {why}" + (", but the chunk is recorded complete" if "missing" in why else ""))
        if data is None:
            if not records[k] and k not in damaged:
                incomplete.append(k)
            continue
        readable[k] = True
        ids[s:e] = data[0]
        digest = chunk_digest(*data)
        if records[k] == 0 and k not in damaged:
            incomplete.append(k)
        elif records[k] and int(records[k]) != digest:
            rep.problems.append(f"{where}: data does not match its completion record")
    if incomplete:
        rep.problems.append(
            f"{len(incomplete)} of {store.n_chunks} chunks not complete (chunks {_spans(incomplete)}): run `wavinv generate` again to finish"
        )
    return ids, readable


def _check_ids(store: Store, ids: np.ndarray, readable: np.ndarray, rep: VerifyReport) -> None:
    """Every row read holds its own id: say which rows do not, which ids are missing and which repeated."""
    n = store.n
    rows_read = _per_row(store, readable)
    expected = np.arange(n)
    wrong = rows_read & (ids != expected)
    if wrong.any():
        counts = np.bincount(ids[(ids >= 0) & (ids < n)], minlength=n)
        missing = np.flatnonzero(rows_read & (counts == 0))
        repeated = np.flatnonzero(counts > 1)
        rep.problems.append(
            f"ids: {int(wrong.sum())} rows hold the wrong id"
            + (f"; missing ids {_spans(missing)}" if len(missing) else "")
            + (f"; repeated ids {_spans(repeated)}" if len(repeated) else "")
        )


def _per_row(store: Store, per_chunk: np.ndarray) -> np.ndarray:
    """A value per chunk repeated for each of its rows: ``(n_chunks,)`` -> ``(n,)``."""
    return np.repeat(per_chunk, [e - s for s, e in map(store.chunk_range, range(store.n_chunks))])


def _check_files(store: Store, rep: VerifyReport) -> list[str]:
    """Links inside the store (a problem) and temporary files of interrupted writes (a note); returns the links."""
    links = store.location.links()
    if links:
        rep.problems.append(f"{len(links)} symbolic links inside the store ({', '.join(links[:3])}): a store holds plain files only; remove them")
    leftovers = store.location.find(".partial") if store.location.is_local else []
    if leftovers:
        rep.notes.append(f"{len(leftovers)} temporary files of interrupted writes (harmless; the next generate removes them)")
    return links


def _check_cache(store: Store, cache: FeatureCache, records: np.ndarray, rep: VerifyReport) -> None:
    """Every recorded chunk of a feature cache reads and hashes to its record; chunks not current are counted.

    A damaged chunk is a problem; an unfinished or stale cache only a note (fits
    then compute their features), unless the store keeps no waveforms to compute them from.
    """
    mine, unreadable = cache.records()
    what = f"feature cache {cache.label} ({cache.key})"
    damaged = list(unreadable)
    for k in np.flatnonzero(mine[:, 1] != 0):
        pooled, why = cache.read_chunk(int(k))
        if pooled is None or features_digest(int(mine[k, 0]), pooled) != int(mine[k, 1]):
            damaged.append(int(k))
    stale = [k for k in np.flatnonzero(~cache.current(records)) if k not in damaged]
    if damaged:
        rep.problems.append(f"{what}: chunks {_spans(damaged)} are damaged (unreadable, or not matching their record): repair with `{store.cache_command(cache.grid)}`")
    if stale:
        line = f"{what}: {len(stale)} of {store.n_chunks} chunks not computed for the current data (chunks {_spans(stale)}): finish it with `{store.cache_command(cache.grid)}`"
        (rep.notes if store.keeps_waveforms else rep.problems).append(line + ("; until then fits compute their features" if store.keeps_waveforms else ""))


def _rerender(store: Store, rep: VerifyReport, k: int, gen: Generator, seed: int | None, usable: np.ndarray) -> None:
    rows = np.flatnonzero(_per_row(store, usable))
    if not len(rows):
        rep.problems.append("no complete chunk to re-render samples from")
        return
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows, size=min(k, len(rows)), replace=False))
    params, err, atol, what = rerendered_errors(store, gen, pick)
    if not store.keeps_waveforms and not any(c.current().all() for c in store.feature_caches().values()):
        rep.notes.append("no complete feature cache to compare the re-rendered clips with: only their parameters were compared")
    rep.rerendered = [int(i) for i in pick]
    rep.max_abs_error = float(err.max())
    bad = pick[(err > atol) | (store.read_rows("params", pick) != params).any(axis=1)]
    if len(bad):
        rep.problems.append(f"re-rendered samples differ from the stored ones: ids {_spans(bad)} (max abs error{what} {err.max():.3g})")


def rerendered_errors(store: Store, gen: Generator, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Re-render the samples ``pick`` (sorted ids) of ``store`` with ``gen``: ``(their parameters, drawn by id,
    per sample the largest difference from what the store holds of it, the tolerance, what was compared)``.

    A store with waveforms is compared clip against clip; one without, by the clips' pooled features
    against every complete feature cache (no complete cache: every difference is 0).
    """
    params = np.concatenate([store.space.sample(i, i + 1, store.seed, store.sampling) for i in pick])
    wave = render_checked(gen, params, ids=pick).astype(WAVEFORM_DTYPE)
    if store.keeps_waveforms:
        return params, np.abs(wave - store.read_rows("waveform", pick)).max(axis=1), RERENDER_ATOL, ""
    return params, _feature_errors(store, gen, pick, wave), RERENDER_FEATURES_ATOL_DB, " features (dB)"


def _feature_errors(store: Store, gen: Generator, pick: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Per picked row, the largest difference between its re-rendered clip's pooled features and every complete cache's."""
    from .frontend import spectrogram
    from .models.features import pool_rows
    from .picture import picture_for

    err = np.zeros(len(pick))
    for cache in store.feature_caches().values():
        if cache.current().all():
            pooled = pool_rows(spectrogram(wave, picture_for(cache.picture, gen, str(store.location), StoreError)), cache.grid)
            err = np.maximum(err, np.abs(pooled - cache.read_rows(pick)).max(axis=1))
    return err
