"""Spread the kept candidates over the parameters the sound does not pin down.

A search drives its K best candidates into one basin: they agree on every
parameter, also on those the target's sound says nothing about (a filter's
resonance when its envelope amount is 0, an LFO's rate at zero depth). The user
asked for several *different* parameter sets that sound alike, so after the
search:

1. **Probe.** Each parameter of the best candidate alone is redrawn from the
   prior and the result scored: one render per parameter. A parameter whose
   redraw moves the score by at most ``tolerance`` is *free* here.
2. **Redraw.** Every other candidate, each round, redraws a run of its free
   parameters (least sensitive first; at first as many as their probed costs,
   summed, allow) and is scored
   again; the redraw is kept when the candidate's score stays within
   ``tolerance`` of where it started the spread, and the candidate moves on to
   the next run. A rejected run is halved; a single parameter that cannot move
   is passed over. ``rounds`` rounds, one render per candidate each: a search
   gives ``spread_rounds(budget, ...)``, more as its budget allows. Each round
   spreads the candidates further; its renders come out of the search's.

The best candidate itself never changes, so best-of-K loses nothing; every
other candidate loses at most ``tolerance`` on the score the search used.
Scores are ``score(unit points) -> (B,)`` in dB; the caller renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["SPREAD_ROUNDS", "SPREAD_TOLERANCE", "Spread", "keep_apart", "spread", "spread_renders", "spread_rounds"]

# dB a redraw may cost a candidate (never the best) on the search's score: small next to the
# distances between a search's kept candidates, and loose enough that redraws of many nearly free
# parameters together still pass
SPREAD_TOLERANCE = 0.3
# rounds of redraws: at least SPREAD_ROUNDS, up to SPREAD_MAX_ROUNDS while the spread takes at most
# SPREAD_SHARE of a search's renders (on synth100 at 6,144 renders, 32 rounds against 8: spread of K
# 0.175 against 0.133, best-of-16 0.04 dB further: benchmarks/README, "Spread of K")
SPREAD_ROUNDS = 8
SPREAD_MAX_ROUNDS = 32
SPREAD_SHARE = 0.1


@dataclass
class Spread:
    """``unit`` (K, P) and ``scores`` (K,) after the redraws, which rows changed, the probe's
    per-parameter score change at the best candidate, and the renders spent."""

    unit: np.ndarray
    scores: np.ndarray
    changed: np.ndarray
    sensitivity: np.ndarray
    renders: int


def spread_renders(n_candidates: int, n_params: int, rounds: int = SPREAD_ROUNDS) -> int:
    """Renders ``spread`` spends at most: the probe, then one per other candidate and round."""
    return n_params + rounds * max(n_candidates - 1, 0) if n_candidates > 1 else 0


def spread_rounds(budget: int, n_candidates: int, n_params: int) -> int:
    """Rounds of redraws a search of ``budget`` renders gives its spread: ``SPREAD_ROUNDS``, and more, up to
    ``SPREAD_MAX_ROUNDS``, while the spread costs at most ``SPREAD_SHARE`` of the budget."""
    afford = (SPREAD_SHARE * budget - n_params) // max(n_candidates - 1, 1)
    return int(min(SPREAD_MAX_ROUNDS, max(SPREAD_ROUNDS, afford)))


def spread(
    score: Callable[[np.ndarray], np.ndarray],
    unit: np.ndarray,
    scores: np.ndarray,
    random_state=None,
    tolerance: float = SPREAD_TOLERANCE,
    rounds: int = SPREAD_ROUNDS,
    min_distance: float = 0.0,
    snap: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Spread:
    """Redraw the free parameters of ``unit`` (K, P), best first, whose ``scores`` (K,) ``score`` gave;
    a redraw is also refused when it comes closer than ``min_distance`` (mean absolute difference)
    to another candidate. ``snap`` maps proposals to the unit points the generator really renders
    (choices and integers rounded) before they are scored and compared."""
    unit = np.array(unit, dtype=np.float64)
    scores = np.array(scores, dtype=np.float64)
    k, p = unit.shape
    changed = np.zeros(k, dtype=bool)
    if k < 2:
        return Spread(unit, scores, changed, np.full(p, np.nan), 0)
    rng = np.random.default_rng(random_state)
    probes = np.repeat(unit[:1], p, axis=0)
    probes[np.arange(p), np.arange(p)] = rng.random(p)
    snap = snap or (lambda x: x)
    probes = snap(probes)
    sensitivity = np.asarray(score(probes), dtype=np.float64) - scores[0]
    sensitivity[~np.isfinite(sensitivity)] = np.inf  # a redraw the generator cannot render pins that parameter
    renders = p
    free = np.argsort(sensitivity, kind="stable")[: int(np.sum(sensitivity <= tolerance))]
    start = scores.copy()  # each candidate may lose at most ``tolerance`` against where it started
    done = np.zeros(k, dtype=int)  # how far along ``free`` (least sensitive first) each candidate has come
    # the first run: as many of the least sensitive as their summed costs allow
    first = int(np.sum(np.cumsum(np.maximum(sensitivity[free], 0.0)) <= tolerance))
    size = np.full(k, max(first, 1))
    size[0] = 0  # the best candidate stays as the search left it
    for _ in range(int(rounds)):
        todo = np.flatnonzero((size > 0) & (done < len(free)))
        if not len(todo):
            break
        proposals = unit[todo].copy()
        for row, i in enumerate(todo):
            proposals[row, free[done[i] : done[i] + size[i]]] = rng.random(len(free[done[i] : done[i] + size[i]]))
        proposals = snap(proposals)
        got = np.asarray(score(proposals), dtype=np.float64)
        renders += len(todo)
        for row, i in enumerate(todo):
            apart = np.abs(np.delete(unit, i, axis=0) - proposals[row]).mean(axis=1).min() >= min_distance
            if np.isfinite(got[row]) and got[row] <= start[i] + tolerance and apart:
                unit[i], scores[i], changed[i] = proposals[row], got[row], True
                done[i] += size[i]
            elif size[i] > 1:
                size[i] //= 2
            else:  # this one parameter cannot move alone here: step past it
                done[i] += 1
    return Spread(unit, scores, changed, sensitivity, renders)


def keep_apart(unit: np.ndarray, moved: np.ndarray, rows: np.ndarray, min_distance: float) -> np.ndarray:
    """Which of ``rows`` may move from ``unit`` (K, P) to ``moved`` (K, P) together, every moved point
    staying ``min_distance`` (mean absolute difference) from every other point. ``spread`` checks each
    redraw against the points as they were then; when the caller undoes some redraws afterwards, a
    kept one can sit too close to a point put back, so the last such row is given up, until none is."""
    rows = np.asarray(rows, dtype=int)
    while min_distance > 0 and len(rows):
        trial = np.array(unit, dtype=np.float64)
        trial[rows] = moved[rows]
        close = [j for j, i in enumerate(rows) if np.abs(np.delete(trial, i, axis=0) - trial[i]).mean(axis=1).min() < min_distance]
        if not close:
            break
        rows = np.delete(rows, close[-1])
    return rows
