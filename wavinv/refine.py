"""Refinement: black-box search through the generator, seeded by the estimator's draws.

The estimator proposes; the generator decides. ``refine`` runs one evolution
strategy per seed candidate (the ``cmaes`` package's CMA-ES, or its separable
variant for high dimensions and small budgets), all in lockstep so that every
generation is one batch of renders. Each run keeps its own best point, so
``n`` runs from ``n`` distinct seeds end as ``n`` distinct candidates.

The search works in unit space ``[0, 1]^P``. A proposal outside the box is
scored at its projection onto the box plus a penalty on the distance, which
keeps the strategy's steps unbiased near a bound (``cmaes``'s own bounded
``ask`` resamples and was measured 4x slower). The score is whatever the caller
passes: the inverter gives lsd_db on every 8th spectrogram frame, and ranks the
survivors exactly afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import InputError, TimeLimitError

__all__ = ["Refinement", "refine", "distinct_best", "MIN_DISTANCE"]

STRATEGIES = ("sep-cma", "cma")
# Bumped whenever a change to the search changes the candidates it returns: the bench keys its
# search rows on it, so results of an older search are re-run, not reused.
SEARCH_VERSION = 2
# Candidates kept after a search differ by at least this much (mean absolute difference on the unit
# scale): measured on synth100, points of one run's neighbourhood are about 0.03-0.06 apart, so 0.03
# lets a good neighbourhood give several answers while near-copies of one point are left out.
MIN_DISTANCE = 0.03
# Score added per unit of squared distance outside the box: large against lsd_db's dB
# differences between neighbours, small enough that a run can still walk along a bound.
PENALTY = 100.0


@dataclass
class Refinement:
    """The best point of each run (unit scale, best first), every point tried, and what it cost."""

    params_unit: np.ndarray  # (n_runs, P)
    scores: np.ndarray  # (n_runs,) the caller's score, lower is better
    n_evals: int
    n_generations: int
    tried_unit: np.ndarray  # (n_evals, P) every proposal scored, projected into the box
    tried_scores: np.ndarray  # (n_evals,)


def _strategy(name: str, mean: np.ndarray, sigma: float, popsize: int, seed: int):
    import cmaes  # imported on use: refinement is optional work

    if name == "sep-cma":
        return cmaes.SepCMA(mean=mean, sigma=sigma, population_size=popsize, seed=seed)
    return cmaes.CMA(mean=mean, sigma=sigma, population_size=popsize, seed=seed)


def _schedule(n_runs: int, lam: int, budget: int, halving: bool) -> list[tuple[int, int]]:
    """``[(active runs, generations), ...]``: all runs alike, or halving the field in equal-budget phases."""
    counts = [n_runs]
    while halving and counts[-1] > 1:
        counts.append((counts[-1] + 1) // 2)
    share = budget // len(counts)
    return [(c, share // (c * lam)) for c in counts if share // (c * lam) > 0]


def refine(
    score: Callable[[np.ndarray], np.ndarray],
    seeds: np.ndarray,
    budget: int,
    *,
    seed_scores: np.ndarray | None = None,
    sigma: float = 0.05,
    popsize: int | None = None,
    strategy: str = "sep-cma",
    halving: bool = True,
    random_state: int | None = 0,
    deadline: float | None = None,
) -> Refinement:
    """Spend about ``budget`` calls of ``score`` on improving each of ``seeds``.

    ``score(x)`` maps unit-scale points ``(B, P)`` to ``(B,)`` distances (lower is
    better). ``seeds`` ``(S, P)`` start one run each, with step size ``sigma``
    (unit scale) and ``popsize`` proposals per generation (default: CMA-ES's
    ``4 + 3 ln P``). ``budget // (S * popsize)`` generations run; with
    ``halving``, the budget is split into equal phases and after each only the
    better half of the runs (by their best score) goes on, as in successive
    halving, so the most promising seeds get the most renders. Every run's
    best point is at least as good as its seed, whose score (``seed_scores``,
    computed here when not given) counts as already evaluated.

    ``deadline`` (a ``time.perf_counter()`` value) raises ``TimeLimitError`` when a
    generation ends after it: stopping early instead would make the result depend
    on the machine's speed, and the same seed must give the same candidates.
    """
    seeds = np.clip(np.asarray(seeds, dtype=np.float64), 0.0, 1.0)
    if seeds.ndim != 2 or len(seeds) == 0:
        raise InputError(f"refine needs seeds of shape (S, P), got {seeds.shape}")
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise InputError(f"the refinement budget must be an integer >= 0, got {budget!r}")
    if not (0.0 < float(sigma) <= 1.0):
        raise InputError(f"sigma must be in (0, 1], got {sigma!r}")
    n_runs, dim = seeds.shape
    lam = int(popsize) if popsize is not None else 4 + int(3 * np.log(dim))
    if lam < 2:
        raise InputError(f"popsize must be >= 2, got {popsize!r}")
    start = np.asarray(score(seeds) if seed_scores is None else seed_scores, dtype=np.float64)
    if start.shape != (n_runs,):
        raise InputError(f"seed_scores must have one score per seed ({n_runs}), got shape {start.shape}")
    n_evals = 0 if seed_scores is not None else n_runs
    best_x, best_f = seeds.copy(), start.copy()
    schedule = _schedule(n_runs, lam, int(budget), halving)
    tried_x: list[np.ndarray] = []
    tried_f: list[np.ndarray] = []
    if not schedule:
        return Refinement(best_x, best_f, n_evals, 0, np.empty((0, dim)), np.empty(0))
    ss = np.random.SeedSequence(random_state)
    runs = [_strategy(strategy, seeds[i], float(sigma), lam, int(s.generate_state(1)[0] >> 1)) for i, s in enumerate(ss.spawn(n_runs))]
    active = np.arange(n_runs)
    n_gen = 0
    for count, gens in schedule:
        active = np.sort(active[np.argsort(best_f[active], kind="stable")[:count]])
        for _ in range(gens):
            x = np.array([[runs[i].ask() for _ in range(lam)] for i in active])  # (A, lam, P)
            inside = np.clip(x, 0.0, 1.0)
            f = np.asarray(score(inside.reshape(-1, dim)), dtype=np.float64).reshape(len(active), lam)
            n_evals += f.size
            n_gen += 1
            tried_x.append(inside.reshape(-1, dim))
            tried_f.append(f.ravel())
            if deadline is not None and time.perf_counter() > deadline:
                raise TimeLimitError(f"the search passed its time limit after {n_evals} of about {budget} renders")
            for a, i in enumerate(active):
                j = int(np.argmin(f[a]))
                if f[a, j] < best_f[i]:
                    best_f[i], best_x[i] = f[a, j], inside[a, j]
                outside = np.sum((x[a] - inside[a]) ** 2, axis=1)
                runs[i].tell(list(zip(x[a], f[a] + PENALTY * outside)))
    order = np.argsort(best_f, kind="stable")
    return Refinement(best_x[order], best_f[order], n_evals, n_gen, np.concatenate(tried_x), np.concatenate(tried_f))


def distinct_best(unit: np.ndarray, scores: np.ndarray, n: int, min_distance: float = 0.0) -> np.ndarray:
    """Indices of ``n`` points (all when fewer), best score first, each at least
    ``min_distance`` (mean absolute difference on the unit scale) from every
    point kept before it; when fewer than ``n`` are that far apart, the best of
    the rest make up the number."""
    order = np.argsort(scores, kind="stable")
    if min_distance <= 0.0:
        return order[:n]
    kept: list[int] = []
    for i in order:
        if not kept or np.abs(unit[kept] - unit[i]).mean(axis=1).min() >= min_distance:
            kept.append(int(i))
            if len(kept) == n:
                return np.asarray(kept, dtype=np.intp)
    taken = set(kept)
    rest = [int(i) for i in order if int(i) not in taken]
    return np.asarray(kept + rest[: n - len(kept)], dtype=np.intp)
