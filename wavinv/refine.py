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

With a ``screen`` (a cheap model of the score, such as a learnt proxy of the
generator: ``ProxySearch.screen``), each generation asks several times the
population, and only the proposals the screen predicts best are rendered and
told to the strategy.

With ``polish``, the last share of the budget goes to a Levenberg-Marquardt
descent from the best point found, on the whole residual picture rather than
one number per render: a finite-difference Jacobian of the residual in the
continuous parameters (one render each), several damped Gauss-Newton steps
tried in one batch, and Broyden updates of the Jacobian between full ones. On
synth100, at the same total budget, it was measured closer than spending the
share on CMA-ES (``benchmarks/refine_sweep.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import InputError, TimeLimitError
from .limits import int_arg
from .metrics import lsd_db

__all__ = ["Refinement", "refine", "distinct_best", "MIN_DISTANCE", "POLISH"]

STRATEGIES = ("sep-cma", "cma")
# Bumped whenever a change to the search changes the candidates it returns: the bench keys its
# search rows on it, so results of an older search are re-run, not reused.
SEARCH_VERSION = 5
# Candidates kept after a search differ by at least this much (mean absolute difference on the unit
# scale): measured on synth100, points of one run's neighbourhood are about 0.03-0.06 apart, so 0.03
# lets a good neighbourhood give several answers while near-copies of one point are left out.
MIN_DISTANCE = 0.03
# Score added per unit of squared distance outside the box: large against lsd_db's dB
# differences between neighbours, small enough that a run can still walk along a bound.
PENALTY = 100.0
# The score of a point the caller could not score (NaN or Inf: a corner the generator cannot
# render): worse than any distance, finite so the strategies' updates stay finite.
FAILED = 1e6
# Share of the budget the inverter gives the polish by default: measured on synth100 at 4,096
# renders, 1/4 beat both 0 (CMA-ES only) and 1/2.
POLISH = 0.25
# A screen asks at most this many proposals per render: more only fills memory with points never rendered.
MAX_SCREEN_FACTOR = 64
# Polish: the finite-difference step on the unit scale (halved after a failed round), the
# Levenberg-Marquardt dampings tried together (relative to the Jacobian's diagonal), and how many
# steps reuse a Jacobian through Broyden updates before it is measured again.
POLISH_STEP = 0.02
DAMPINGS = (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
BROYDEN_STEPS = 3


@dataclass
class Refinement:
    """The best point of each run (unit scale, best first), every point tried, and what it cost."""

    params_unit: np.ndarray  # (n_runs, P)
    scores: np.ndarray  # (n_runs,) the caller's score, lower is better
    n_evals: int
    n_generations: int
    tried_unit: np.ndarray  # (n_evals, P) every proposal scored, projected into the box
    tried_scores: np.ndarray  # (n_evals,)


def frame_rms(residual: np.ndarray) -> np.ndarray:
    """``(B, F, T)`` residual pictures -> ``(B,)``: their lsd_db against zero; NaN where a picture
    has NaN (a point that could not be rendered)."""
    return np.asarray(lsd_db(residual, np.float64(0.0)))


def _scored(f: np.ndarray) -> np.ndarray:
    """Scores with NaN and Inf (points that could not be scored) replaced by ``FAILED``."""
    f = np.asarray(f, dtype=np.float64)
    return np.where(np.isfinite(f), f, FAILED)


def _jacobian(residual, x: np.ndarray, r: np.ndarray, idx: np.ndarray, h: float) -> tuple[np.ndarray, ...]:
    """Forward differences at ``x`` (residual ``r``) in the parameters ``idx``, step ``h`` away from the
    nearer bound: the probes, their scores, the frame-weighted Jacobian ``(F*T, A)`` and the frame weights."""
    sign = np.where(x[idx] + h > 1.0, -1.0, 1.0)
    probe = np.repeat(x[None], len(idx), axis=0)
    probe[np.arange(len(idx)), idx] += sign * h
    rp = np.asarray(residual(probe), dtype=np.float64)
    scores = _scored(frame_rms(rp))
    rp[~np.isfinite(rp).all(axis=(1, 2))] = r  # a probe that failed: that parameter is held still
    w = 1.0 / np.sqrt(np.maximum(np.sqrt(np.mean(r * r, axis=0)), 1e-3))  # (T,)
    jac = ((rp - r[None]) * w).reshape(len(idx), -1).T / (sign * h)
    return probe, scores, jac, w


def polish_point(
    residual: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    budget: int,
    *,
    active: np.ndarray,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt from ``x0`` on ``residual``: every point tried ``(n, P)`` and its score ``(n,)``.

    Each round measures the Jacobian of the residual in the ``active``
    parameters by forward differences (``POLISH_STEP``, away from the nearer
    bound), then tries one step per damping in ``DAMPINGS`` in one batch and
    moves to the best if it scores lower; up to ``BROYDEN_STEPS`` more steps
    reuse the Jacobian through Broyden's rank-one update. A round without gain
    halves the step. Frames are weighted by ``1 / sqrt(frame RMS)`` at the
    current point, so the least-squares problem follows lsd_db's mean of
    per-frame RMS rather than the plain sum of squares.
    """
    idx = np.flatnonzero(active)
    x = np.clip(np.asarray(x0, dtype=np.float64), 0.0, 1.0)
    r = np.asarray(residual(x[None]), dtype=np.float64)[0]
    f = float(_scored(frame_rms(r[None]))[0])
    if f >= FAILED:  # the start itself cannot be rendered: nothing to descend from
        return x[None], np.array([f])
    tried_x, tried_f = [x[None]], [np.array([f])]
    n, h = 1, POLISH_STEP
    while n + len(idx) + len(DAMPINGS) <= budget and h > 1e-4:
        probe, probe_f, jac, w = _jacobian(residual, x, r, idx, h)
        n += len(idx)
        tried_x.append(probe)
        tried_f.append(probe_f)
        rw = (r * w).ravel()
        for _ in range(1 + BROYDEN_STEPS):
            if n + len(DAMPINGS) > budget:
                break
            jtj, g = jac.T @ jac, jac.T @ rw
            diag = np.diag(np.diag(jtj) + 1e-9)
            steps = np.repeat(x[None], len(DAMPINGS), axis=0)
            for k, mu in enumerate(DAMPINGS):
                steps[k, idx] = np.clip(x[idx] - np.linalg.solve(jtj + mu * diag + 1e-6 * np.eye(len(idx)), g), 0.0, 1.0)
            rs = np.asarray(residual(steps), dtype=np.float64)
            fs = _scored(frame_rms(rs))
            n += len(DAMPINGS)
            tried_x.append(steps)
            tried_f.append(fs)
            if deadline is not None and time.perf_counter() > deadline:
                raise TimeLimitError(f"the search passed its time limit after {n} of its polish's {budget} renders")
            k = int(np.argmin(fs))
            if fs[k] >= f:
                h /= 2
                break
            s_, y_ = steps[k, idx] - x[idx], (rs[k] * w).ravel() - rw
            jac += np.outer(y_ - jac @ s_, s_) / (s_ @ s_ + 1e-12)
            x, r, f = steps[k], rs[k], float(fs[k])
            rw = (r * w).ravel()
    return np.concatenate(tried_x), np.concatenate(tried_f)


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


def _real(value) -> float:
    """``value`` as a float, NaN for anything that is not a real number (so range checks refuse it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return float("nan")
    return float(value)


def _check_settings(seeds, budget, sigma, popsize, strategy, polish, residual, continuous) -> tuple[int, np.ndarray, int]:
    """Refuse bad settings (``InputError``); return the population size, the polish's mask and its budget."""
    if seeds.ndim != 2 or len(seeds) == 0:
        raise InputError(f"refine needs seeds of shape (S, P), got {seeds.shape}")
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 0:
        raise InputError(f"the refinement budget must be an integer >= 0, got {budget!r}")
    if not (0.0 < _real(sigma) <= 1.0):
        raise InputError(f"sigma must be in (0, 1], got {sigma!r}")
    if not (0.0 <= _real(polish) < 1.0):
        raise InputError(f"polish must be a share of the budget in [0, 1), got {polish!r}")
    if polish and residual is None:
        raise InputError("polish needs the residual pictures (residual=), not only a score")
    dim = seeds.shape[1]
    moving = np.ones(dim, dtype=bool) if continuous is None else np.asarray(continuous, dtype=bool)
    if moving.shape != (dim,):
        raise InputError(f"continuous must be one flag per parameter ({dim}), got shape {moving.shape}")
    polish_budget = int(round(float(polish) * int(budget))) if moving.any() else 0
    if polish_budget < moving.sum() + len(DAMPINGS):  # not one round: all to the evolution strategy
        polish_budget = 0
    lam = int(popsize) if popsize is not None else 4 + int(3 * np.log(dim))
    if lam < 2:
        raise InputError(f"popsize must be >= 2, got {popsize!r}")
    return lam, moving, polish_budget


def _screened(x: np.ndarray, screen, anchors: np.ndarray, lam: int) -> np.ndarray:
    """The ``lam`` proposals of each run (``x``: ``(A, m, P)``) that ``screen`` predicts closest, the
    box penalty added as the score adds it."""
    inside = np.clip(x, 0.0, 1.0)
    predicted = np.asarray(screen(inside, anchors), dtype=np.float64) + PENALTY * np.sum((x - inside) ** 2, axis=2)
    pick = np.argsort(np.where(np.isfinite(predicted), predicted, FAILED), axis=1, kind="stable")[:, :lam]
    return np.take_along_axis(x, pick[:, :, None], axis=1)


def _evolve(score, runs, schedule, lam, best_x, best_f, deadline, budget, n_before, screen=None, factor=1) -> tuple[list, list, int]:
    """Run the strategies in lockstep through ``schedule``, updating each run's best in place
    (``best_x``, ``best_f``); return every point tried, its score, and the generations run. With
    ``screen``, each run proposes ``factor`` times its population and renders the ``lam`` it predicts best."""
    n_runs, dim = best_x.shape
    tried_x: list[np.ndarray] = []
    tried_f: list[np.ndarray] = []
    active = np.arange(n_runs)
    n_gen, n_evals = 0, n_before
    for count, gens in schedule:
        active = np.sort(active[np.argsort(best_f[active], kind="stable")[:count]])
        for _ in range(gens):
            m = lam * factor if screen is not None else lam
            x = np.array([[runs[i].ask() for _ in range(m)] for i in active])  # (A, m, P)
            if m > lam:
                x = _screened(x, screen, best_x[active], lam)
            inside = np.clip(x, 0.0, 1.0)
            f = _scored(score(inside.reshape(-1, dim))).reshape(len(active), lam)
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
    return tried_x, tried_f, n_gen


def _polish_best(residual, best_x: np.ndarray, best_f: np.ndarray, budget: int, moving: np.ndarray, deadline) -> tuple[np.ndarray, np.ndarray]:
    """Polish the best run's point, updating it in place when the polish found better; return what it tried."""
    top = int(np.argmin(best_f))
    px, pf = polish_point(residual, best_x[top], budget, active=moving, deadline=deadline)
    if len(pf) and pf.min() < best_f[top]:
        best_f[top], best_x[top] = pf.min(), px[int(np.argmin(pf))]
    return px, pf


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
    residual: Callable[[np.ndarray], np.ndarray] | None = None,
    continuous: np.ndarray | None = None,
    polish: float = 0.0,
    screen: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    screen_factor: int = 4,
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

    ``polish`` (a share of ``budget`` in [0, 1)) is spent on a Levenberg-Marquardt
    descent from the best point found (see ``polish_point``); it needs
    ``residual(x)``, the ``(B, F, T)`` pictures whose per-frame RMS averaged over
    frames is ``score(x)``, and moves only the ``continuous`` parameters (a
    boolean mask; default all).

    ``screen(points, anchors)``, a cheap model of ``score``, pre-selects the
    proposals: each generation, every run asks ``screen_factor`` times its
    population, ``screen`` predicts the scores of those ``(A, m, P)`` points
    given each run's best point so far (``anchors``, ``(A, P)``), and only the
    ``popsize`` it predicts lowest are rendered and told to the strategy.

    ``deadline`` (a ``time.perf_counter()`` value) raises ``TimeLimitError`` when a
    generation ends after it: stopping early instead would make the result depend
    on the machine's speed, and the same seed must give the same candidates.
    """
    seeds = np.clip(np.asarray(seeds, dtype=np.float64), 0.0, 1.0)
    lam, moving, polish_budget = _check_settings(seeds, budget, sigma, popsize, strategy, polish, residual, continuous)
    factor = int_arg("screen_factor", screen_factor, 1, MAX_SCREEN_FACTOR)
    n_runs, dim = seeds.shape
    start = _scored(score(seeds) if seed_scores is None else seed_scores)
    if start.shape != (n_runs,):
        raise InputError(f"seed_scores must have one score per seed ({n_runs}), got shape {start.shape}")
    n_evals = 0 if seed_scores is not None else n_runs
    best_x, best_f = seeds.copy(), start.copy()
    schedule = _schedule(n_runs, lam, int(budget) - polish_budget, halving)
    if not schedule and not polish_budget:
        return Refinement(best_x, best_f, n_evals, 0, np.empty((0, dim)), np.empty(0))
    ss = np.random.SeedSequence(random_state)
    runs = [_strategy(strategy, seeds[i], float(sigma), lam, int(s.generate_state(1)[0] >> 1)) for i, s in enumerate(ss.spawn(n_runs))]
    tried_x, tried_f, n_gen = _evolve(score, runs, schedule, lam, best_x, best_f, deadline, budget, n_evals, screen, factor)
    n_evals += sum(len(f) for f in tried_f)
    if polish_budget:
        px, pf = _polish_best(residual, best_x, best_f, polish_budget, moving, deadline)
        n_evals += len(pf)
        tried_x.append(px)
        tried_f.append(pf)
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
