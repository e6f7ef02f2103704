"""The inverter: target -> M draws from the estimator -> re-render -> rank -> best K.

An ``Inverter`` bundles a fitted estimator with what it was fitted against: the
generator's identity (spec, space fingerprint), the input kind (spectrogram or
waveform), the frontend settings and the training store. It never imports a
generator by itself unless the generator is a built-in one: the user names it.

**Refinement** (``Inverter.invert(..., refine=R)``): about R more renders of
black-box search through the generator (``wavinv.refine``): one evolution
strategy per candidate, started from the best ``n`` draws and scored on the
shortlist's frames, then (``polish``, default ``POLISH`` of the budget)
Levenberg-Marquardt steps on the residual picture from the best point found.
Of every point the search tried, the best ``exact`` (default ``2 n``) that lie
at least ``min_distance`` apart (mean absolute difference on the unit scale,
default ``MIN_DISTANCE``) are ranked exactly with the draws, and the best ``n``
of those, again that far apart, are returned. ``refine_options`` hold ``runs``
(how many of the best draws to refine, default ``n``), ``exact``,
``min_distance``, and what goes to ``wavinv.refine.refine`` (``sigma``,
``popsize``, ``strategy``, ``halving``, ``polish``, and ``screen_factor``:
with an estimator that can screen proposals, a ``ProxySearch``, each
generation asks that many times its population and renders those the proxy,
as the estimator's learnt rounds adapted it to the target, predicts closest;
default ``SCREEN_FACTOR``; 1: no screening).
With ``refine_options["gradient"] = S`` (steps) and a generator that offers a
differentiable ``render_torch``, ``gradient_starts`` (default ``GRADIENT_STARTS``)
of the best distinct points the search found then follow the gradient of
their distance to the target through the generator and the frontend
(``wavinv.gradient``, Adam at ``gradient_lr``): S renders each, out of R.
Then, unless ``refine_options["spread"]`` is False or the budget is under four
times its cost, the kept candidates are spread over the parameters the sound
does not pin down (``wavinv.spread``: at most P + r (n - 1) of the R renders, r
rounds: ``spread_rounds(R, n, P)``, 8 to 32 as a tenth of R allows, or
``refine_options["spread"] = r``): the best stays, each other one may lose at
most ``SPREAD_TOLERANCE`` dB.

**Anytime record** (``invert(..., budgets=[16, 64, ...])``): the best lsd_db
reached after each number of renders, in render order (the draws in the order
the estimator gives them, its learnt rounds, then the search's evaluations).
The search and the shortlist score on every 8th frame, so at each budget the
best point by that score so far also joins the exact ranking (a draw's picture,
or one more render for a point of the search): every value of the record is
the full picture's lsd_db of a point the inversion ranked, as its candidates'
are, and the last one is its best candidate's.

**Cost per render** (``Inversion.costs()``): milliseconds per clip the
generator rendered, per picture a search scored (``SHORTLIST_STEP``-th
frames and the distance, or the whole picture when the frontend has no such
subset) and per picture ranked exactly, over the whole inversion. A search
pays render plus score for each point it tries, so a score that costs more than
the render says the picture, not the generator, sets the pace.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import joblib
import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .clips import clip_count, clip_renderer, sequence_params_unit
from .errors import InputError, MismatchError, ModelError, RenderError, StoreError, TimeLimitError
from .floor import floor_waves, probe_floor
from .frontend import Spectrogram, spectrogram
from .gradient import LEARNING_RATE, descend, differentiable, torch_render
from .generators import BUILTIN_GENERATORS, Generator, identity_differences, identity_label, recorded_generator, render_checked, render_finite
from .limits import budget_list, int_arg, require_memory
from .methods import INPUTS
from .metrics import lsd_db, mrstft
from .modelfile import FORMAT, FORMAT_VERSION, read_bytes_pinned, read_manifest
from .outputs import atomic_path
from .params import ParamSpace
from .refine import FAILED, MAX_SCREEN_FACTOR, MIN_DISTANCE, POLISH, Refinement, distinct_best, frame_rms
from .picture import KIND as PICTURE_KIND, GeneratorPicture, has_picture, picture_differences, picture_label
from .spread import SPREAD_ROUNDS, SPREAD_TOLERANCE, keep_apart, spread, spread_renders, spread_rounds
from .pictures import Pictures, store_picture, store_spectrograms
from .schema import frontend_problem, identity_problem, manifest_problem
from .targets import Target

__all__ = ["Inverter", "Inversion", "fit_inverter", "load", "read_manifest"]

log = logging.getLogger(__name__)

# The shortlist ranks draws on every 8th frame, an eighth of the STFT work. Its cost in
# quality is measured by benchmarks/invert_speed.py against exact ranking.
SHORTLIST_STEP = 8
# Points a gradient stage starts from: the best few the search found (a gradient render costs
# several plain ones on a CPU, so it polishes answers rather than explores).
GRADIENT_STARTS = 4
# Proposals a search asks per render when the estimator can screen them (ProxySearch.screen): with the
# proxy its learnt rounds adapted to the target, 4 took best-of-16 closer on synth100 and torchsynth
# for about the same time (benchmarks/README.md).
SCREEN_FACTOR = 4

# Inversion.costs()'s names -> the timing keys their seconds and counts add up under
COSTS = {"render": "rendering", "score": "scoring", "exact": "exact"}


@dataclass
class Inversion:
    """The best K candidates for one target, best first."""

    target: Target
    target_spectrogram: np.ndarray  # (F, T) dB
    params: np.ndarray  # (K, P) natural units
    params_unit: np.ndarray  # (K, P)
    waveforms: np.ndarray  # (K, n_samples)
    spectrograms: np.ndarray  # (K, F, T)
    distances: dict[str, np.ndarray]  # metric -> (K,)
    n_draws: int
    n_unique: int  # distinct draws, the estimator's learnt rounds included
    n_renders: int  # clips rendered in all (distinct draws + refinement)
    space: ParamSpace
    generator: dict[str, Any]
    method: str
    timing: dict[str, float] = field(default_factory=dict)
    frontend: dict[str, Any] = field(default_factory=dict)  # the picture spectrograms were made with
    chance: dict[str, Any] = field(default_factory=dict)  # see Inverter.chance_level
    # with invert's budgets: [(renders, best lsd_db reached by then), ...], the last at n_renders
    anytime: list[tuple[int, float]] = field(default_factory=list)

    def costs(self) -> dict[str, float | None]:
        """Milliseconds per render (``render_ms``), per picture a search scored (``score_ms``) and per
        picture ranked exactly (``exact_ms``), over this inversion; None for what it never did."""
        return {f"{key}_ms": _per_item_ms(self.timing, what) for key, what in COSTS.items()}

    @property
    def candidates(self) -> list[dict[str, Any]]:
        """Best first: ``{"rank": 1, "params": {name: value, ...}, "distance": {"lsd_db": ..., ...}}`` each."""
        return [
            {
                "rank": i + 1,
                "params": self.space.to_dict(self.params[i]),
                "distance": {k: float(v[i]) for k, v in self.distances.items()},
            }
            for i in range(len(self.params))
        ]

    def to_json(self) -> dict[str, Any]:
        """The ``wavinv invert`` JSON document: the target, the generator, the candidates best first, timings."""
        gen = {k: self.generator[k] for k in ("name", "version", "spec", "fingerprint") if k in self.generator}
        doc = {
            "target": self.target.source,
            "target_kind": self.target.kind,
            "generator": gen,
            "method": self.method,
            "draws": self.n_draws,
            "unique_draws": self.n_unique,
            "renders": self.n_renders,
            "candidates": self.candidates,
            "timing_s": {k: round(v, 4) for k, v in self.timing.items() if not k.endswith("_n")},
            "cost_ms": {k: None if v is None else round(v, 4) for k, v in self.costs().items()},
        }
        if self.chance:
            doc["chance"] = self.chance
        if self.anytime:
            doc["anytime"] = [{"renders": b, "lsd_db": v} for b, v in self.anytime]
        return doc

    def level_gap_db(self) -> float:
        """How many dB quieter the best candidate is than the target (mean power of their pictures)."""

        def level(spec: np.ndarray) -> float:
            return float(10.0 * np.log10(np.mean(10.0 ** (np.asarray(spec, dtype=np.float64) / 10.0))))

        return level(self.target_spectrogram) - level(self.spectrograms[0])


class Inverter:
    """A fitted estimator plus everything needed to use it on a new target."""

    def __init__(self, estimator, generator: dict[str, Any], input: str, frontend: dict[str, Any], method: str, store: dict[str, Any] | None = None):
        if input not in INPUTS:
            raise InputError(f"input must be one of {INPUTS}, got {input!r}")
        self.estimator = estimator
        self.generator = dict(generator)
        self.input = input
        self.frontend = dict(frontend)
        self.method = method
        self.store = store or {}
        problem = self._estimator_problem()
        if problem:
            raise MismatchError(problem)
        self.validation: dict[str, float] = {}
        self.training: dict[str, Any] = {}  # how the fit was fed: its wait on data, the clips rendered for it
        self._gen: Generator | None = None
        self._frontend_module: Spectrogram | None = None
        self._coarse_module: Spectrogram | None = None

    # -- identity ---------------------------------------------------------------
    @property
    def space(self) -> ParamSpace:
        return ParamSpace.from_json(self.generator["space"])

    @property
    def fingerprint(self) -> str:
        return self.generator["fingerprint"]

    @property
    def spec_shape(self) -> tuple[int, int]:
        return (int(self.frontend["n_freq"]), int(self.frontend["n_frames"]))

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "wavinv_version": __version__,
            "method": self.method,
            "input": self.input,
            "estimator": type(self.estimator).__name__,
            "generator": {k: self.generator.get(k) for k in ("name", "version", "spec", "fingerprint", "sample_rate", "n_samples", "space")},
            "frontend": self.frontend,
            "store": self.store,
            "validation": self.validation,
            "training": self.training,
        }

    # -- generator --------------------------------------------------------------
    def attach(self, generator: Generator | str | None = None) -> Generator:
        """Set the generator used to re-render candidates: the one the model was fitted on (name,
        version, parameter space, clips) drawing the same picture, else ``MismatchError`` naming both.

        With no argument, only a built-in generator recorded in the model is loaded:
        importing anything else runs code, so the user must name it.
        """
        if self._gen is not None and (generator is None or generator is self._gen):
            return self._gen
        gen = recorded_generator(self.generator, generator, "the model", MismatchError, made="was fitted on")
        if self.frontend.get("kind") == PICTURE_KIND:
            # the model's picture is the generator's own function: it must still draw the same picture
            self._frontend_module = GeneratorPicture(gen, expected=self.frontend, owner="the model", error=MismatchError)
        elif has_picture(gen):
            raise MismatchError(
                f"the model was fitted on {picture_label(self.frontend)}, and generator {identity_label(self.generator)} now draws "
                "its own picture (a spectrogram function): fit a model on a store made with it"
            )
        self._gen = gen
        return gen

    def _estimator_problem(self) -> str | None:
        """Where the estimator's fitted shapes (``n_params_``, ``input_shape_``, when it records them) are not the
        model's parameter space and picture (or clip): another generator's estimator. None when they match."""
        n_params, shape = getattr(self.estimator, "n_params_", None), getattr(self.estimator, "input_shape_", None)
        space = len(self.generator.get("space") or [])
        if n_params is not None and space and int(n_params) != space:
            return (f"the estimator {type(self.estimator).__name__} was fitted on {n_params} parameters, "
                    f"the model's generator {identity_label(self.generator)} has {space}")
        expected = self.spec_shape if self.input == "spectrogram" else (int(self.generator["n_samples"]),)
        if shape is not None and tuple(shape) != expected:
            made = f"{picture_label(self.frontend)} makes" if self.input == "spectrogram" else "clips have"
            return f"the estimator {type(self.estimator).__name__} was fitted on {self.input}s of shape {tuple(shape)}, the model's {made} {expected}"
        return None

    def sample(self, X, n: int, random_state=None) -> np.ndarray:
        """The estimator's ``n`` draws for each row of ``X``, unit-scaled ``(N, n, P)``, quietly; ``MismatchError``
        when it gives another number of parameters than the model's space has (before anything is rendered)."""
        with estimator_progress(self.estimator, False):  # a few rows: bars would only flicker
            return checked_samples(self.estimator, X, n, random_state, self.generator)

    def memory_needed(self, draws: int, shortlist: int | None = None) -> int:
        """Bytes an inversion with ``draws`` draws holds at its peak (see ``inversion_memory``)."""
        return inversion_memory(self.generator["n_samples"], len(self.space), self.spec_shape, draws, shortlist)

    # -- features ---------------------------------------------------------------
    def frontend_module(self) -> "Spectrogram | GeneratorPicture":
        """The picture the model was fitted on: wavinv's frontend, or the attached generator's own function."""
        if self._frontend_module is None:
            if self.frontend.get("kind") == PICTURE_KIND:
                raise ModelError("the model pictures clips with its generator's own spectrogram function: attach the generator first")
            self._frontend_module = Spectrogram.from_config(self.frontend)
        return self._frontend_module

    @property
    def coarse_frames(self) -> bool:
        """Whether the shortlist can rank on every ``SHORTLIST_STEP``-th frame (STFT and mel; a CQT or
        the generator's own function has no such cheap subset, so those rank in full)."""
        return self.frontend["kind"] in ("stft", "mel")

    def spectrograms(self, waves: np.ndarray) -> np.ndarray:
        return spectrogram(np.asarray(waves, dtype=np.float32), self.frontend_module())

    def _target_features(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """``(X for the estimator (1, ...), target spectrogram (F, T))``."""
        if target.kind == "waveform":
            wave = target.data[None, :].astype(np.float32)
            spec = self.spectrograms(wave)[0]
            return (wave if self.input == "waveform" else spec[None]), spec
        if self.input == "waveform":
            raise InputError(f"{target.source}: this model takes waveforms; give a .wav or a waveform .npy, not a spectrogram")
        if target.data.shape != self.spec_shape:
            raise InputError(f"{target.source}: spectrogram has shape {target.data.shape}, the model's frontend makes {self.spec_shape}")
        return target.data[None].astype(np.float32), target.data.astype(np.float32)

    # -- inversion --------------------------------------------------------------
    def _shortlist(self, target_spec: np.ndarray, waves: np.ndarray, keep: int, rendered_at: np.ndarray, timing: dict[str, float],
                   budgets=()) -> np.ndarray:
        """Indices of the ``keep`` draws closest to the target on every ``SHORTLIST_STEP``-th frame,
        and of the closest among those rendered before each of ``budgets``.

        Those columns are exactly the full spectrogram's (same window, longer hop),
        so this is lsd_db on a subset of frames at a fraction of the STFT cost.
        """
        with _costed(timing, "scoring", len(waves)):
            lsd = lsd_db(target_spec[:, ::SHORTLIST_STEP], spectrogram(waves, self._coarse()))
        return np.union1d(np.argsort(lsd, kind="stable")[:keep], _best_before(lsd, rendered_at, budgets))

    def invert(
        self,
        target: Target | np.ndarray,
        n: int = 16,
        draws: int = 256,
        generator: Generator | str | None = None,
        random_state=None,
        shortlist: int | None = None,
        refine: int = 0,
        refine_options: dict[str, Any] | None = None,
        time_limit: float | None = None,
        progress: bool = False,
        budgets: Sequence[int] | None = None,
    ) -> Inversion:
        """Draw ``draws`` parameter sets, re-render each, return the best ``n`` by lsd_db.

        When there are more distinct draws than ``shortlist`` (default ``4 * n``),
        only the closest on every ``SHORTLIST_STEP``-th frame get full spectrograms
        and the exact ranking; ``shortlist=draws`` ranks every draw exactly.
        ``refine`` > 0 spends about that many more renders on search through the
        generator, and ``refine_options`` tune it (``runs``, ``exact``,
        ``min_distance``, and ``wavinv.refine.refine``'s ``sigma``, ``popsize``,
        ``strategy``, ``halving``, ``polish``, ``screen_factor``): the module docstring says how.
        ``time_limit`` (seconds for the whole inversion) refuses, with
        ``TimeLimitError``, a ``refine`` budget that the render rate measured on
        the draws says cannot finish in time, and stops a search that runs past
        it (an error, not a shorter search: the same seed gives the same result).
        ``progress=True`` shows the search's renders as a progress bar (quiet by default).
        ``budgets`` (increasing render counts) fills ``Inversion.anytime``: the module docstring says how.
        """
        target, shortlist, gen = self._check_request(target, n, draws, generator, random_state, shortlist, refine)
        _check_refine_options(refine_options)
        budgets = () if budgets is None else tuple(budget_list(budgets))
        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        X, target_spec = self._target_features(target)
        corrections = self._learnt_renders(draws, n)
        samples = self.sample(X, draws - corrections, random_state=random_state)[0]  # (M, P) unit scale
        timing["sample"] = time.perf_counter() - t0
        drawn = self._rendered_draws(gen, samples, timing)
        ranked = self._scored_draws(target_spec, *drawn, shortlist, timing, budgets)
        n_unique = len(np.unique(samples, axis=0))  # renders spent, failed ones too; the learnt rounds' count as draws: the same budget
        memo: dict[str, Any] = {}  # the estimator's scratch for this inversion: its learnt rounds' proxy, for the search's screen
        if corrections:
            ranked, spent = self._learnt_rounds(X, gen, target_spec, ranked, timing, n_unique, memo)
            n_unique += spent
        n_renders, min_distance = n_unique, 0.0  # without a search, the best n whatever their distance
        options = dict(refine_options or {})
        rounds = options.pop("spread", True)
        rounds = spread_rounds(refine, n, len(self.space)) if rounds is True else int(rounds)
        spreads = rounds > 0 and spreads_within(refine, n, len(self.space), rounds)
        deadline = None
        if refine:
            t4 = time.perf_counter()
            deadline = None if time_limit is None else t0 + _time_budget(time_limit, refine, n_unique, timing, t4 - t0)
            search = search_renders(refine, n, len(self.space), spreads, rounds)
            ranked, spent, min_distance = self._searched(gen, target_spec, ranked, n, search, random_state, options, deadline, timing, progress,
                                                         n_unique, budgets, memo)
            n_renders += spent
            timing["refine"] = time.perf_counter() - t4
        order = distinct_best(ranked[0], ranked[4], n, min_distance)
        scored, scored_at = ranked[4], ranked[5]  # every exactly ranked point, for the anytime record
        if spreads:
            t5 = time.perf_counter()
            ranked, spent = self._spread(gen, target_spec, tuple(a[order] for a in ranked), random_state, n_renders, min_distance, rounds, timing, deadline)
            order, n_renders = np.argsort(ranked[4], kind="stable"), n_renders + spent
            scored, scored_at = np.concatenate([scored, ranked[4]]), np.concatenate([scored_at, ranked[5]])
            timing["spread"] = time.perf_counter() - t5
        unique, params, waves, specs, lsd, rendered_at = ranked
        distances = {"lsd_db": lsd[order]}
        if target.kind == "waveform":
            distances["mrstft"] = np.asarray(mrstft(target.data, waves[order]))
        timing["total"] = time.perf_counter() - t0
        return Inversion(
            target=target, target_spectrogram=target_spec, params=params[order], params_unit=unique[order],
            waveforms=waves[order], spectrograms=specs[order], distances=distances, n_draws=draws,
            n_unique=int(n_unique), n_renders=int(n_renders), space=self.space, generator=self.generator,
            method=self.method, timing=timing, frontend=self.frontend, anytime=_anytime(scored, scored_at, budgets, n_renders),
        )

    def _learnt_renders(self, draws: int, n: int) -> int:
        """Renders of ``draws`` that go to the estimator's learnt rounds (``correct``): none when it has
        none, or when fewer than ``n`` draws would be left."""
        if not callable(getattr(self.estimator, "correct", None)):
            return 0
        spent = int(self.estimator.correction_renders())
        return spent if draws - spent >= n else 0

    def _learnt_rounds(self, X, gen, target_spec, ranked: tuple[np.ndarray, ...], timing: dict[str, float], start: int,
                       memo: dict[str, Any]) -> tuple[tuple[np.ndarray, ...], int]:
        """The estimator's rounds: its best rendered candidates, moved by ``correct`` from what their
        renders look like, rendered (after the ``start`` renders before them) and joined to ``ranked``;
        also the renders spent. ``memo`` is the estimator's scratch from round to round. Times ``"learnt"``."""
        t = time.perf_counter()
        est = self.estimator
        column = 3 if self.input == "spectrogram" else 2  # the rows the estimator reads
        known: set[bytes] = set()
        parts = [_unseen(ranked, known)]
        spent = 0
        for _ in range(int(est.rounds)):
            unique, lsd = (np.concatenate([part[i] for part in parts]) for i in (0, 4))
            rows = _Rows([part[column] for part in parts])
            best = np.argsort(lsd, kind="stable")[: int(est.keep)]
            proposed = est.correct(X, unique[best], rows[best], seen=(unique, rows), memo=memo)
            drawn = self._rendered_draws(gen, proposed, timing, start + spent)
            spent += len(np.unique(proposed, axis=0))  # renders spent, failed ones too
            parts.append(_unseen(self._scored_draws(target_spec, *drawn, len(drawn[0]), timing), known))
        timing["learnt"] = time.perf_counter() - t
        return tuple(np.concatenate(column) for column in zip(*parts)), spent

    def _rendered_draws(self, gen, samples: np.ndarray, timing: dict[str, float], start: int = 0) -> tuple[np.ndarray, ...]:
        """``(unit, params, waves, rendered_at)`` of the distinct draws, in the order first drawn; times ``"render"``.

        Point estimators repeat one draw: each distinct candidate is rendered once.
        ``rendered_at`` numbers the renders, from ``start`` (the renders before these).
        """
        _, first = np.unique(samples, axis=0, return_index=True)
        unique = samples[np.sort(first)]
        params = self.space.from_unit(unique)
        t1 = time.perf_counter()
        with _costed(timing, "rendering", len(params)):
            waves, finite = render_finite(gen, params)
        timing["render"] = timing.get("render", 0.0) + time.perf_counter() - t1
        if not finite.any():  # nothing to rank
            raise RenderError(f"{gen.name}: none of the {len(params)} draws could be rendered (NaN or Inf)")
        # a draw the generator cannot render (NaN or Inf) is no candidate; its render is still spent
        at = start + np.arange(len(unique))
        return unique[finite], params[finite], waves[finite], at[finite]

    def _scored_draws(self, target_spec, unique, params, waves, rendered_at, shortlist: int, timing: dict[str, float], budgets=()) -> tuple[np.ndarray, ...]:
        """``(unit, params, waves, pictures, lsd_db, rendered_at)`` of the draws that reach the exact
        ranking (the shortlist's, when there are more than ``shortlist``, and the best of those
        rendered before each of ``budgets``); times ``"shortlist"`` and ``"score"``."""
        if len(unique) > shortlist and self.coarse_frames:
            t2 = time.perf_counter()
            keep = self._shortlist(target_spec, waves, shortlist, rendered_at, timing, budgets)
            unique, params, waves, rendered_at = unique[keep], params[keep], waves[keep], rendered_at[keep]
            timing["shortlist"] = timing.get("shortlist", 0.0) + time.perf_counter() - t2
        t3 = time.perf_counter()
        with _costed(timing, "exact", len(waves)):
            specs = self.spectrograms(waves)
            lsd = lsd_db(target_spec, specs)
        timing["score"] = timing.get("score", 0.0) + time.perf_counter() - t3
        return unique, params, waves, specs, lsd, rendered_at

    def _searched(self, gen, target_spec, ranked: tuple[np.ndarray, ...], n: int, budget: int, random_state, options, deadline,
                  timing: dict[str, float], progress: bool = False, start: int = 0, budgets=(), memo: dict[str, Any] | None = None):
        """``ranked`` (``_scored_draws``'s arrays) joined to what a search from its best draws found
        (``_refine``, after the ``start`` renders of the draws), the renders the search spent, and the
        distance to keep between candidates."""
        unique, _, _, specs, lsd, _ = ranked
        best = np.argsort(lsd, kind="stable")
        with tqdm(total=int(budget), desc="search", unit="render", disable=not progress, leave=False) as bar:
            *refined, n_evals, min_distance = self._refine(
                gen, target_spec, unique[best], specs[best], n, int(budget), random_state, options, timing, deadline, bar, start, budgets, memo
            )
        return _joined(ranked, tuple(refined)), n_evals + len(refined[0]), min_distance

    def _spread(self, gen, target_spec, kept: tuple[np.ndarray, ...], random_state, start: int, min_distance: float, rounds: int,
                timing: dict[str, float], deadline: float | None = None) -> tuple[tuple[np.ndarray, ...], int]:
        """``kept`` (``_scored_draws``'s arrays, best first) with their free parameters redrawn
        (``wavinv.spread``, ``rounds`` rounds), scored on the search's frames and then exactly: a redraw that costs more than
        ``SPREAD_TOLERANCE`` on the full picture is undone. Also the renders spent (after ``start``)."""
        unit, params, waves, specs, lsd, rendered_at = (a.copy() for a in kept)
        module, frames = self._scoring()
        reference = frames(target_spec)
        made: dict[bytes, np.ndarray] = {}

        def score(x: np.ndarray) -> np.ndarray:
            if deadline is not None and time.perf_counter() > deadline:  # as the search does: an error, not fewer redraws
                raise TimeLimitError("the spread of the candidates passed the inversion's time limit")
            with _costed(timing, "rendering", len(x)):
                w, finite = render_finite(gen, self.space.from_unit(x))
            made.update((row.tobytes(), wave) for row, wave in zip(x, w))
            with _costed(timing, "scoring", len(x)):
                out = np.asarray(lsd_db(reference, spectrogram(w, module)), dtype=np.float64)
            out[~finite] = np.inf
            return out

        coarse = lsd_db(reference, np.stack([frames(spec) for spec in specs]))
        seed = None if random_state is None else int(np.random.default_rng(random_state).integers(2**62)) + 1
        res = spread(score, unit, coarse, random_state=seed, rounds=rounds, min_distance=min_distance,
                     snap=lambda x: self.space.to_unit(self.space.from_unit(x)))
        rows = np.flatnonzero(res.changed)
        if len(rows):
            new_waves = np.stack([made[res.unit[i].tobytes()] for i in rows])
            with _costed(timing, "exact", len(rows)):
                new_specs = self.spectrograms(new_waves)
                new_lsd = np.asarray(lsd_db(target_spec, new_specs))
            ok = new_lsd <= lsd[rows] + SPREAD_TOLERANCE
            ok &= np.isin(rows, keep_apart(unit, res.unit, rows[ok], min_distance))  # an undone redraw is a point put back
            rows = rows[ok]
            unit[rows], params[rows], waves[rows] = res.unit[rows], self.space.from_unit(res.unit[rows]), new_waves[ok]
            specs[rows], lsd[rows], rendered_at[rows] = new_specs[ok], new_lsd[ok], start + res.renders - 1
        return (unit, params, waves, specs, lsd, rendered_at), res.renders

    def _check_request(self, target, n, draws, generator, random_state, shortlist, refine) -> tuple[Target, int, Generator]:
        """Refuse a bad request before any work (``InputError``); return the target, the shortlist size
        and the attached generator."""
        if not isinstance(target, Target):
            arr = np.asarray(target, dtype=np.float32)
            target = Target("waveform" if arr.ndim == 1 else "spectrogram", arr, "<array>")
        if n < 1 or draws < n:
            raise InputError(f"need 1 <= n <= draws, got n={n}, draws={draws}")
        if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
            raise InputError(f"refine must be an integer >= 0 (extra renders per target), got {refine!r}")
        shortlist = 4 * n if shortlist is None else int(shortlist)
        if shortlist < n:
            raise InputError(f"the shortlist must keep at least n={n} draws, got {shortlist}")
        if isinstance(random_state, (int, np.integer)):
            int_arg("seed", random_state, 0)
        require_memory(self.memory_needed(draws, shortlist), f"inverting with {draws} draws")
        if not np.isfinite(target.data).all():
            raise InputError(f"{target.source}: the target contains NaN or Inf")
        gen = self.attach(generator)
        if target.kind == "waveform" and target.data.shape != (gen.n_samples,):
            raise InputError(f"{target.source}: waveform has {target.data.shape[0]} samples, the generator makes {gen.n_samples}")
        return target, shortlist, gen

    def chance_level(self, result: Inversion, draws: int | None = None, random_state=None) -> dict[str, Any]:
        """The scale for ``result``: lsd_db of the best of ``draws`` random parameter sets, beside its best candidate's.

        Random draws are the prior (uniform on the unit scale), as many as the
        inversion drew plus the renders its refinement spent, unless ``draws``
        says otherwise (the same render budget); both are scored on the
        shortlist's frames (every ``SHORTLIST_STEP``-th, or all of them where the
        picture has no such subset), so the two numbers compare. Sets
        ``result.chance`` and returns it.
        """
        gen = self.attach()
        draws = int(result.n_draws + result.n_renders - result.n_unique if draws is None else draws)
        space = self.space
        unit = np.random.default_rng(random_state).random((draws, len(space)))
        waves = np.concatenate([render_checked(gen, space.from_unit(unit)), result.waveforms[:1]])
        module, reference = self._scoring()
        lsd = lsd_db(reference(result.target_spectrogram), spectrogram(waves, module))
        result.chance = {
            "lsd_db": float(lsd[:-1].min()),
            "best_lsd_db": float(lsd[-1]),
            "draws": draws,
            "frames": f"every {SHORTLIST_STEP}th frame" if self.coarse_frames else "all frames",
        }
        return result.chance

    def floor_level(self, result: Inversion, truth: np.ndarray) -> dict[str, Any]:
        """What the same sound scores against ``result``'s target, whose true parameters (natural units) are ``truth``.

        ``wavinv.floor``'s rule, probed on this one target (``probe_floor``): its decision
        and figures, and under ``"lsd_db"`` the floor's distance, scored on the chance level's frames.
        """
        gen = self.attach()
        module, reference = self._scoring()
        target = reference(result.target_spectrogram)

        def distance(waves: np.ndarray) -> np.ndarray:
            return lsd_db(target, spectrogram(waves, module))

        params = np.asarray(truth, dtype=np.float64)[None]
        floor = probe_floor(gen, params, distance)
        return {**floor, "lsd_db": float(distance(floor_waves(gen, params, floor))[0])}

    def _scoring(self):
        """``(module, frames of a target picture)`` the shortlist scores with: every 8th frame, or all of them."""
        if self.coarse_frames:
            return self._coarse(), lambda spec: spec[:, ::SHORTLIST_STEP]
        return self.frontend_module(), lambda spec: spec

    def _refine(self, gen, target_spec: np.ndarray, ranked: np.ndarray, ranked_specs: np.ndarray, n: int, budget: int, random_state, options,
                timing: dict[str, float], deadline=None, bar=None, start: int = 0, budgets=(), memo: dict[str, Any] | None = None):
        """Refine the best of ``ranked`` (unit draws, best first, with their full pictures);
        return the refined points' unit values, params, waves, pictures, exact lsd_db, when they were
        rendered (counting from ``start``), renders spent and the distance kept between candidates.
        Besides the best distinct points, the best found before each of ``budgets`` is ranked exactly."""
        from .refine import refine  # the name `refine` is invert's budget argument there

        options = dict(options or {})
        runs = int(options.pop("runs", n))
        exact = int(options.pop("exact", 2 * n))
        min_distance = float(options.pop("min_distance", MIN_DISTANCE))
        if runs < 1 or exact < 1:
            raise InputError(f"refine runs and exact must be >= 1, got {runs} and {exact}")
        if not 0.0 <= min_distance <= 1.0:
            raise InputError(f"min_distance must be in [0, 1] (mean absolute difference on the unit scale), got {min_distance}")
        space = self.space
        # scored as the shortlist scores (every 8th frame); without such a subset, in full
        module, frames = self._scoring()
        reference = frames(target_spec)

        screen = self._screen(reference, options, runs, ranked, ranked_specs, frames, memo)

        def residual(x: np.ndarray) -> np.ndarray:
            with _costed(timing, "rendering", len(x)):
                waves, finite = render_finite(gen, space.from_unit(x))
            if bar is not None:
                bar.update(len(x))
            with _costed(timing, "scoring", len(x)):
                out = spectrogram(waves, module)
            out[~finite] = np.nan  # a point the generator cannot render: the search scores it worst
            if screen is not None:
                with _costed(timing, "screening", len(x)):
                    screen.observe(x, out)
            return out - reference

        def score(x: np.ndarray) -> np.ndarray:
            return frame_rms(residual(x))

        seed = None if random_state is None else int(np.random.default_rng(random_state).integers(2**62))
        # the seeds' scores come from the pictures already made: their shortlist frames are columns of them
        seed_scores = lsd_db(reference, np.stack([frames(spec) for spec in ranked_specs[:runs]]))
        steps, starts, lr = self._gradient_settings(gen, options, budget)
        budget -= steps * starts  # the gradient's renders come out of the same budget
        options.setdefault("polish", POLISH)
        continuous = np.array([p.scale in ("linear", "log") for p in space.params])
        res = refine(score, ranked[:runs], budget, seed_scores=seed_scores, random_state=seed, deadline=deadline,
                     residual=residual, continuous=continuous, screen=screen, **options)
        if steps:
            res = self._descended(gen, res, module, reference, steps, starts, lr, min_distance, timing, deadline, bar)
        # every point tried, not only each run's best: the neighbourhood of a good point holds other good
        # answers that differ on parameters the sound barely depends on; the best distinct ones are ranked exactly
        rendered = np.flatnonzero(res.tried_scores < FAILED)
        kept = rendered[distinct_best(res.tried_unit[rendered], res.tried_scores[rendered], exact, min_distance)]
        when = start + np.arange(len(res.tried_scores))
        extra = np.setdiff1d([i for i in _best_before(res.tried_scores, when, budgets) if res.tried_scores[i] < FAILED], kept)
        kept = np.concatenate([kept, extra.astype(np.intp)])
        unit, at = res.tried_unit[kept], when[kept]
        if not len(unit):  # a budget too small for one generation: the seeds, draws rendered before the search
            unit, at = res.params_unit, np.full(len(res.params_unit), start - 1)
        params = space.from_unit(unit)
        with _costed(timing, "rendering", len(params)):
            waves = render_checked(gen, params)
        with _costed(timing, "exact", len(params)):
            specs = self.spectrograms(waves)
            lsd = lsd_db(target_spec, specs)
        # report the unit point of what was rendered (ints rounded, choices snapped)
        return space.to_unit(params), params, waves, specs, lsd, at, res.n_evals, min_distance

    def _screen(self, reference: np.ndarray, options: dict[str, Any], runs: int, ranked: np.ndarray, ranked_specs: np.ndarray, frames,
                memo: dict[str, Any] | None = None):
        """The estimator's screen of the search's proposals (``ProxySearch.screen``), having seen the seeds'
        pictures, when it has one and ``options``' ``screen_factor`` (taken out here) is above 1; else None."""
        factor = int(options.pop("screen_factor", SCREEN_FACTOR))
        make = getattr(self.estimator, "screen", None)
        if not callable(make) or self.input != "spectrogram" or factor == 1:
            return None
        options["screen_factor"] = factor
        screen = make(reference, memo)
        screen.observe(np.clip(np.asarray(ranked[:runs], dtype=np.float64), 0.0, 1.0), np.stack([frames(spec) for spec in ranked_specs[:runs]]))
        return screen

    def _gradient_settings(self, gen, options: dict[str, Any], budget: int) -> tuple[int, int, float]:
        """``(steps, starts, learning rate)`` of the gradient stage, taken out of ``options``; refuses
        (``InputError``) a gradient the generator or the picture cannot give."""
        steps = options.pop("gradient", 0)
        starts = options.pop("gradient_starts", GRADIENT_STARTS)
        lr = options.pop("gradient_lr", LEARNING_RATE)
        for name, value in (("gradient", steps), ("gradient_starts", starts)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise InputError(f"{name} must be an integer >= 0, got {value!r}")
        if not steps:
            return 0, 0, float(lr)
        if not differentiable(gen):
            raise InputError(f"gradient steps need a generator with render_torch (a differentiable render); {gen.name} has none")
        if not isinstance(self.frontend_module(), Spectrogram):
            raise InputError("gradient steps need wavinv's own frontend: the generator's own picture is not differentiable")
        starts = max(1, int(starts))
        if steps * starts > budget:
            raise InputError(f"{steps} gradient steps from {starts} starts are {steps * starts} renders, more than the search's {budget}")
        return int(steps), starts, lr

    def _descended(self, gen, res, module, reference, steps: int, starts: int, lr: float, min_distance: float,
                   timing: dict[str, float], deadline, bar):
        """``res`` (a ``Refinement``) with the points of a gradient descent (``wavinv.gradient``) from its
        ``starts`` best distinct points added to those it tried; times ``"gradient"``."""
        t = time.perf_counter()
        rendered = np.flatnonzero(res.tried_scores < FAILED)
        pool_x = np.concatenate([res.params_unit, res.tried_unit[rendered]])
        pool_f = np.concatenate([res.scores, res.tried_scores[rendered]])
        first = pool_x[distinct_best(pool_x, pool_f, starts, min_distance)]
        gx, gf = descend(self.space, torch_render(gen), module, reference, first, steps, lr=lr, deadline=deadline,
                         on_render=None if bar is None else bar.update)
        timing["gradient"] = time.perf_counter() - t
        gf = np.where(np.isfinite(gf), gf, FAILED)
        return Refinement(res.params_unit, res.scores, res.n_evals + len(gf), res.n_generations,
                          np.concatenate([res.tried_unit, gx]), np.concatenate([res.tried_scores, gf]))

    def _coarse(self) -> Spectrogram:
        if self._coarse_module is None:
            self._coarse_module = self.frontend_module().every_nth_frame(SHORTLIST_STEP)
        return self._coarse_module

    # -- persistence ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_gen"] = None  # a generator is code: never pickled, re-attached by the user
        state["_frontend_module"] = None
        state["_coarse_module"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # models saved before a fit recorded how it was fed have no ``training``
        self.__dict__.update({"_gen": None, "_frontend_module": None, "_coarse_module": None, "training": {}, **state})

    def save(self, path: str | Path) -> Path:
        """Write ``{"manifest", "inverter"}`` with joblib, atomically (``OutputError`` when it cannot be written)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            joblib.dump({"manifest": self.manifest(), "inverter": self}, tmp, compress=3)
        return path

    def __repr__(self) -> str:
        return f"Inverter(method={self.method!r}, input={self.input!r}, generator={self.generator['name']!r}, fingerprint={self.fingerprint})"


@contextlib.contextmanager
def estimator_progress(estimator, on: bool) -> Iterator[None]:
    """Turn the progress bars of ``estimator`` (and of its fitted parts that have them) on or off for a while."""
    parts = [estimator, *(v for v in vars(estimator).values() if hasattr(v, "get_params"))]
    saved = [(p, p.progress) for p in parts if isinstance(getattr(p, "progress", None), bool)]
    for p, _ in saved:
        p.progress = on
    try:
        yield
    finally:
        for p, value in saved:
            p.progress = value


def spreads_within(refine: int, n: int, n_params: int, rounds: int = SPREAD_ROUNDS) -> bool:
    """Whether a search of ``refine`` renders keeping ``n`` candidates is large enough to spread them in ``rounds``
    rounds (four times the spread's cost)."""
    return refine >= 4 * spread_renders(n, n_params, rounds)


def search_renders(refine: int, n: int, n_params: int, spreads: bool = True, rounds: int | None = None) -> int:
    """Renders of ``refine`` left to the search itself (CMA-ES, polish, gradient) once the spread takes its share
    (``rounds`` rounds; None: ``spread_rounds``)."""
    rounds = spread_rounds(refine, n, n_params) if rounds is None else rounds
    if not (spreads and spreads_within(refine, n, n_params, rounds)):
        return refine
    return refine - spread_renders(n, n_params, rounds)


def _joined(ranked: tuple[np.ndarray, ...], refined: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The refined points joined to the ranked draws (unit, params, waves, pictures, lsd_db, row-aligned);
    a parameter set rendered twice counts once, first occurrence kept."""
    joined = [np.concatenate(pair) for pair in zip(ranked, refined)]
    _, first = np.unique(joined[1], axis=0, return_index=True)
    keep = np.sort(first)
    return tuple(a[keep] for a in joined)


def _unseen(part: tuple[np.ndarray, ...], known: set[bytes]) -> tuple[np.ndarray, ...]:
    """The rows of ``part`` (``_scored_draws``'s arrays) whose parameter sets are neither in ``known`` nor
    earlier in ``part``, which ``known`` then holds: a parameter set rendered twice counts once, as in ``_joined``."""
    new = []
    for i, params in enumerate(part[1]):
        key = (params + 0.0).tobytes()  # -0.0 as 0.0, as np.unique compares them
        if key not in known:
            known.add(key)
            new.append(i)
    return tuple(a[new] for a in part)


class _Rows:
    """Row-aligned chunks indexed as one array without joining them: the learnt rounds read a few rows
    of a growing set of pictures, and joining the set every round would copy all of it each time."""

    def __init__(self, chunks: list[np.ndarray]):
        self.chunks = chunks
        self.offsets = np.cumsum([0] + [len(c) for c in chunks])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index) -> np.ndarray:
        rows = np.arange(len(self))[index]
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        picked = [self.chunks[w][r - self.offsets[w]] for w, r in zip(which, rows)]
        return np.stack(picked) if picked else self.chunks[0][:0]


def _best_before(scores: np.ndarray, rendered_at: np.ndarray, budgets) -> np.ndarray:
    """Indices of the lowest of ``scores`` among the points rendered before each of ``budgets``, for the
    budgets that fall after the first of these renders and before their last (else none is needed)."""
    picks = []
    for b in budgets:
        before = np.flatnonzero(rendered_at < b)
        if 0 < len(before) < len(rendered_at):
            picks.append(before[np.argmin(scores[before])])
    return np.unique(np.asarray(picks, dtype=np.intp))


def _anytime(lsd: np.ndarray, rendered_at: np.ndarray, budgets, n_renders: int) -> list[tuple[int, float]]:
    """``[(b, best lsd_db of the ranked points rendered before b), ...]`` for the budgets below
    ``n_renders``, then ``(n_renders, the best of all)``; empty without budgets."""
    if not budgets:
        return []
    curve = [(int(b), float(lsd[rendered_at < b].min())) for b in budgets if b < n_renders and (rendered_at < b).any()]
    return curve + [(int(n_renders), float(lsd.min()))]


# what refine_options may hold: the inverter's own keys, then what it passes on to wavinv.refine.refine
REFINE_OPTIONS = ("runs", "exact", "min_distance", "spread", "gradient", "gradient_starts", "gradient_lr",
                  "sigma", "popsize", "strategy", "halving", "polish", "screen_factor")


def _check_refine_options(options) -> None:
    """Refuse, before any render, refine options that are not a mapping or name no known setting."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise InputError(f"refine_options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - set(REFINE_OPTIONS))
    if unknown:
        raise InputError(f"unknown refine option {', '.join(map(str, unknown))}: known are {', '.join(REFINE_OPTIONS)}")
    rounds = options.get("spread", True)
    if not isinstance(rounds, bool) and not (isinstance(rounds, (int, np.integer)) and rounds >= 1):
        raise InputError(f"refine option spread must be True, False or a number of rounds >= 1, got {rounds!r}")
    int_arg("refine option screen_factor", options.get("screen_factor", SCREEN_FACTOR), 1, MAX_SCREEN_FACTOR)


@contextlib.contextmanager
def _costed(timing: dict[str, float], what: str, n: int) -> Iterator[None]:
    """Adds the block's seconds to ``timing[what + "_s"]`` and its ``n`` items to ``timing[what + "_n"]``."""
    t = time.perf_counter()
    try:
        yield
    finally:
        timing[f"{what}_s"] = timing.get(f"{what}_s", 0.0) + time.perf_counter() - t
        timing[f"{what}_n"] = timing.get(f"{what}_n", 0) + n


def _per_item_ms(timing: dict[str, float], what: str) -> float | None:
    n = timing.get(f"{what}_n", 0)
    return 1000.0 * timing[f"{what}_s"] / n if n else None


def _time_budget(limit: float, refine: int, n_drawn: int, timing: dict[str, float], elapsed: float) -> float:
    """``limit`` back, once the draws' render rate says ``refine`` more renders fit in it; else ``TimeLimitError``."""
    if not limit > 0:
        raise InputError(f"the time limit must be a positive number of seconds, got {limit!r}")
    per_render = (timing["render"] + timing.get("shortlist", timing["score"])) / n_drawn
    needed = elapsed + refine * per_render
    if needed > limit:
        afford = max(0, int((limit - elapsed) / per_render))
        raise TimeLimitError(
            f"refining with {refine} renders needs about {needed:.1f} s at the {1 / per_render:.0f} renders/s measured on the draws, "
            f"over the time limit of {limit:g} s: allow more time or refine with at most about {afford} renders"
        )
    return float(limit)


def checked_samples(estimator, X, n: int, random_state, generator: dict[str, Any]) -> np.ndarray:
    """``estimator.sample(X, n, random_state)`` as ``(N, n, P)``, or ``MismatchError`` when P is not the number
    of parameters of ``generator`` (an identity) or the shape is not a batch of draws."""
    samples = np.asarray(estimator.sample(X, n, random_state=random_state))
    space = ParamSpace.from_json(generator["space"])
    if samples.ndim != 3 or samples.shape[2] != len(space):
        got = f"{samples.shape[2]} parameters per draw" if samples.ndim == 3 else f"an array of shape {samples.shape}"
        raise MismatchError(
            f"the estimator {type(estimator).__name__} sampled {got}, the generator {identity_label(generator)} has {len(space)}: nothing rendered"
        )
    return samples


def fitted_mismatch(manifest: dict[str, Any], identity: dict[str, Any], frontend: dict[str, Any] | None, owner: str, other: str) -> str | None:
    """Where a model (its manifest, ``Inverter.manifest()``) was fitted on another generator, parameter space
    or picture than ``identity`` and ``frontend`` (a store's, say), one line naming ``owner`` and ``other``
    and what differs; None when they match."""
    differences = identity_differences(manifest["generator"], identity, "the model", other) + picture_differences(manifest.get("frontend"), frontend)
    if not differences:
        return None
    return (f"{owner} was fitted on generator {identity_label(manifest['generator'])} pictured by {picture_label(manifest.get('frontend'))}, "
            f"{other} holds {identity_label(identity)} pictured by {picture_label(frontend)}: {'; '.join(differences)}")


def inversion_memory(n_samples: int, n_params: int, spec_shape: tuple[int, int], draws: int, shortlist: int | None = None) -> int:
    """Peak bytes of one inversion: every draw's parameters and clip, coarse spectrograms, full ones for the shortlist."""
    f, t = spec_shape
    kept = draws if shortlist is None else min(draws, shortlist)
    per_draw = 4 * n_samples + 32 * n_params + 4 * f * (t // SHORTLIST_STEP + 1)
    return int(draws * per_draw + kept * 8 * f * t)


def store_inputs(store, split: str, input: str, frontend=None, clips=None):
    """The estimator's ``X`` for a split of a store: lazy waveforms or lazy spectrograms (``frontend``: ``store_picture(store, ...)``).

    ``clips``: the split's clips rendered as they are read (``clips.RenderedClips``) instead of the store's.
    """
    if input not in INPUTS:
        raise InputError(f"input must be one of {', '.join(INPUTS)}, got {input!r}")
    if input == "waveform":
        return store.waveforms(split) if clips is None else clips
    return store_spectrograms(store, split, frontend=frontend, clips=clips)


def fit_inverter(
    store,
    method: str,
    input: str = "spectrogram",
    overrides: dict[str, Any] | None = None,
    n_validation: int = 256,
    random_state: int = 0,
    scheduler: Any = None,
    progress: bool = True,
    generator: Generator | str | None = None,
    render_workers: int | None = None,
    render_clips: int | None = None,
) -> Inverter:
    """Fit ``method`` on the store's train split and summarise it on (part of) the val split.

    ``scheduler`` fits on a Dask cluster (``pca-lgbm`` and ``pca-lgbm-quantile``; see ``wavinv.models.lgbm_dask``);
    the model is a plain local one all the same. ``progress=False`` silences the
    estimator's progress bars (when it has any). ``generator`` (an object or a
    spec) is needed for spectrograms when the store's picture is its generator's
    own ``spectrogram`` function (``pictures.store_picture``) and that generator is not built in,
    and to render clips of a store that keeps none, and to measure each
    parameter's sensitivity (``wavinv.sensitivity``, into ``validation["learnt"]``; without a
    generator at hand, ``validation["sensitivity"]`` says it was skipped); the
    methods that pool spectrograms read a store's feature cache when it has one.

    Clips a store does not keep are rendered while the estimator reads them, in
    ``render_workers`` processes (default: half the CPUs; 0: in the reading
    thread), ahead of the reader (``wavinv.clips``), after checking that the
    generator loads, is the store's and renders what the store recorded.
    ``render_clips=N`` trains on the train split of the first N samples of the
    store's sequence (N >= the store's size): the store's and those ``generate --n N``
    would add, every clip rendered. ``Inverter.training`` records the share of the
    training steps' time spent waiting on data and the clips rendered.
    """
    from .methods import build_method

    random_state = int_arg("seed", random_state, 0)
    n_clips = None if render_clips is None else clip_count(store, render_clips)
    estimator = build_method(method, **(overrides or {}))
    estimator.check_hyper_parameters()  # before any clip is read or rendered
    if not progress and "progress" in estimator.get_params():
        estimator.set_params(progress=False)
    if generator is not None:
        store.attach(generator)
    if scheduler is not None and (not store.keeps_waveforms or n_clips is not None):
        why = "keeps no waveforms" if not store.keeps_waveforms else f"holds fewer clips than the {n_clips} asked for"
        raise InputError(f"{store.location} {why}: fit without a scheduler (clips are rendered while fitting; the pooling methods read a feature cache)")
    picture = store_picture(store, generator) if input == "spectrogram" else None
    with _clip_renderer(store, input, generator, render_workers, n_clips, progress) as renderer:
        train = None if renderer is None else renderer.split(n_clips or store.n, "train")
        X = store_inputs(store, "train", input, picture, train)
        y = store.params_unit("train") if train is None else sequence_params_unit(store, train.ids)
        if len(y) < 2:
            raise InputError(f"{store.location}: the train split has {len(y)} samples; generate more")
        fit_s = _timed_fit(estimator, store, input, X, y, scheduler)
        inv = Inverter(
            estimator,
            generator=store.generator,
            input=input,
            frontend=store.frontend_config,
            method=method,
            store={"path": str(store.location), "fingerprint": store.fingerprint, "n_train": int(len(y)), **({"n_clips": n_clips} if n_clips else {})},
        )
        val = None if renderer is None or store.keeps_waveforms else renderer.split(store.n, "val")
        inv.validation = {"fit_s": round(fit_s, 3), **_validation(estimator, store, input, picture, n_validation, random_state, val)}
        if inv.validation.get("learnt"):
            _add_sensitivity(inv.validation, store, generator, random_state, progress)
        inv.training = _training_record(estimator, renderer)
    return inv


def _clip_renderer(store, input: str, generator, workers: int | None, n_clips: int | None, progress: bool):
    """The ``ClipRenderer`` a fit reads clips from (checked before any work), or a null context when it reads the store's.

    Clips are rendered when the store keeps none or ``n_clips`` asks for more. A
    spectrogram fit on a store without waveforms renders them only when the
    generator is named or built in: without it, the methods that pool still read the feature cache.
    """
    renders = n_clips is not None or (not store.keeps_waveforms and (input == "waveform" or generator is not None or store.generator.get("spec") in BUILTIN_GENERATORS))
    return clip_renderer(store, generator, workers, progress) if renders else contextlib.nullcontext()


def _training_record(estimator, renderer) -> dict[str, Any]:
    """What ``Inverter.training`` records: the share of the steps' time waiting on data (estimators that measure it)
    and, when clips were rendered, by how many worker processes and how many."""
    share = getattr(estimator, "fit_stats_", {}).get("data_wait_share")
    record = {"data_wait_share": round(float(share), 4)} if isinstance(share, float) and np.isfinite(share) else {}
    if renderer is not None and renderer.rendered:  # a fit from a feature cache renders none
        record.update(render_workers=renderer.workers, clips_rendered=renderer.rendered)
    return record


def _timed_fit(estimator, store, input: str, X, y: np.ndarray, scheduler: Any) -> float:
    """Fit ``estimator`` on ``(X, y)``, or on a Dask cluster when ``scheduler`` is given; the seconds it took."""
    t0 = time.perf_counter()
    if scheduler is None:
        estimator.fit(X, y)
    else:
        from .models.lgbm_dask import fit_on_dask  # dask is imported only when a scheduler is given

        fit_on_dask(estimator, store, input, scheduler)
    return time.perf_counter() - t0


def _validation(estimator, store, input: str, picture, n_validation: int, random_state: int, clips=None) -> dict[str, Any]:
    """``{"n_val", "param_mae", "param_mae_centre_guess", "coverage@80", "learnt"}`` of a fitted estimator on the
    first ``n_validation`` rows of the val split (only ``n_val`` when the split is empty; ``clips``: its rendered clips)."""
    from .metrics import coverage, param_mae

    Xv, yv = store_inputs(store, "val", input, picture, clips), store.params_unit("val")
    keep = np.arange(min(n_validation, len(yv)))
    if not len(keep):
        return {"n_val": 0}
    # read (or compute) the validation rows once: predict and sample both need them; from a store
    # with feature caches (or no waveforms), a lazy view lets the pooling methods read them from a cache
    Xv = Xv.take(keep) if isinstance(Xv, Pictures) and (store.feature_caches() or not store.keeps_waveforms) else np.asarray(Xv[keep])
    with estimator_progress(estimator, False):  # a few rows: bars would only flicker
        pred = estimator.predict(Xv)
        samples = checked_samples(estimator, Xv, 64, random_state, store.generator)
    return {
        "n_val": int(len(keep)),
        "param_mae": float(param_mae(yv[keep], pred)),
        "param_mae_centre_guess": float(param_mae(yv[keep], np.full_like(yv[keep], 0.5))),
        "coverage@80": float(coverage(yv[keep], samples, level=0.8)),
        "learnt": learnt_parameters([p.name for p in store.space.params], yv[keep], samples),
    }


def _add_sensitivity(validation: dict[str, Any], store, generator, random_state: int, progress: bool) -> None:
    """Each parameter's ``sensitivity_db`` (``wavinv.sensitivity``, on the validation rows) into
    ``validation["learnt"]``, and how it was measured into ``validation["sensitivity"]``; only
    ``{"skipped": why}`` there where the generator is not at hand or the store has no picture."""
    from .sensitivity import parameter_sensitivity

    if store.frontend_config is None:
        validation["sensitivity"] = {"skipped": "the store records no picture"}
        return
    try:
        gen = store.attach(generator)
    except StoreError:  # a recorded generator that is not built in and was not named: never imported
        validation["sensitivity"] = {"skipped": "its generator was not named (wavinv fit --generator SPEC measures it)"}
        return
    # the store (its generator, rows and picture) and the seed fix the numbers: every method fitted on it shares them
    key = (store.fingerprint, json.dumps(store.frontend_config, sort_keys=True), validation["n_val"], random_state)
    if key not in _SENSITIVITY:
        rows = store.params_unit("val")[: validation["n_val"]]
        _SENSITIVITY[key] = parameter_sensitivity(gen, rows, store_picture(store, gen), SHORTLIST_STEP, random_state, progress=progress)
    measured = dict(_SENSITIVITY[key])
    for name, db in measured.pop("sensitivity_db").items():
        validation["learnt"][name]["sensitivity_db"] = db
    validation["sensitivity"] = measured


# the sensitivities measured in this process, by store, picture, validation rows and seed (see _add_sensitivity)
_SENSITIVITY: dict[tuple, dict[str, Any]] = {}


def learnt_parameters(names, truth: np.ndarray, samples: np.ndarray) -> dict[str, dict[str, float]]:
    """Which parameters the samples pin down: per parameter, the mean distance of a draw from the truth
    (``posterior``), that of a uniform draw from the prior (``prior``: (t^2 + (1-t)^2) / 2 for truth t,
    exactly) and their ``ratio`` (1: nothing learnt; lower: learnt), lowest ratio first.

    ``truth`` (N, P) and ``samples`` (N, S, P) are unit-scaled."""
    posterior = np.abs(samples - truth[:, None, :]).mean(axis=(0, 1))
    prior = ((truth**2 + (1 - truth) ** 2) / 2).mean(axis=0)
    ratio = posterior / np.maximum(prior, 1e-12)
    return {names[j]: {"posterior": round(float(posterior[j]), 4), "prior": round(float(prior[j]), 4), "ratio": round(float(ratio[j]), 3)}
            for j in np.argsort(ratio, kind="stable")}


def _inverter_problem(inv: Inverter) -> str | None:
    """What is wrong with an unpickled inverter's own records (the ones inversion uses), or None."""
    state = vars(inv)
    for key in ("estimator", "generator", "input", "frontend", "method"):
        if key not in state:
            return f"the inverter has no {key!r}"
    if inv.input not in INPUTS or not isinstance(inv.method, str):
        return f"the inverter's input {inv.input!r} or method {inv.method!r} is not valid"
    if not (hasattr(inv.estimator, "sample") and hasattr(inv.estimator, "predict")):
        return f"the estimator {type(inv.estimator).__name__} cannot sample"
    return identity_problem(inv.generator) or frontend_problem(inv.frontend)


def load(path: str | Path, sha256: str | None = None) -> Inverter:
    """Load a model saved by ``Inverter.save``.

    A joblib file is a pickle, and loading one runs whatever code it names: load
    only model files you made or trust. ``sha256`` (64 hex digits, what ``wavinv
    info`` prints) pins the file: one with another SHA-256 is refused with
    ``ModelError`` before anything in it is unpickled. ``read_manifest`` reads a
    file's manifest without running it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    source = path if sha256 is None else io.BytesIO(read_bytes_pinned(path, sha256))
    try:
        obj = joblib.load(source)
    except (Exception, SystemExit) as e:
        raise ModelError(f"{path}: not a readable wavinv model ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or "manifest" not in obj or not isinstance(obj.get("inverter"), Inverter):
        raise ModelError(f"{path}: not a wavinv model file")
    manifest, inv = obj["manifest"], obj["inverter"]
    problem = manifest_problem(manifest, FORMAT, FORMAT_VERSION, INPUTS) or _inverter_problem(inv)
    if problem:
        raise ModelError(f"{path}: damaged model file: {problem}")
    if manifest["generator"].get("fingerprint") != inv.fingerprint or manifest["method"] != inv.method or manifest["input"] != inv.input:
        raise ModelError(f"{path}: manifest does not match the model it holds")
    problem = inv._estimator_problem()
    if problem:
        raise MismatchError(f"{path}: {problem}")
    if manifest.get("wavinv_version") != __version__:
        log.warning("%s was saved by wavinv %s, this is %s", path, manifest.get("wavinv_version"), __version__)
    return inv
