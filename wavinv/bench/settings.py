"""What a bench run does: its profile and overrides resolved into settings, and the rows they make.

``make_settings`` checks every setting before anything runs; ``make_entries`` lists
the rows of the table (a method, its input and how it is inverted), which the
run fits and evaluates in that order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from ..inverter import SCREEN_FACTOR
from ..limits import budget_list, int_arg
from ..methods import INPUTS, build_method, method_names
from ..profiles import PROFILES  # plain data, also read by the CLI's help
from ..refine import MAX_SCREEN_FACTOR
from .targets import target_options

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

# one logger for the whole package: its lines read "wavinv.bench: ..." wherever they come from
log = logging.getLogger(__package__)

# Renders per target at which the rows with a search record their best so far (the anytime table),
# besides the search rows' own budget (draws + refine).
DEFAULT_BUDGETS = (16, 64, 256, 1024, 4096)


def get_profile(name: str) -> dict[str, Any]:
    """A copy of a named profile (``quick``, ``full``, ``test``)."""
    if name not in PROFILES:
        raise InputError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
    return json.loads(json.dumps(PROFILES[name]))


def parse_list(text: str | Sequence[str] | None, what: str) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (no empty items, no repeats)."""
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    if not items or any(not s for s in items):
        raise InputError(f"{what}: expected a comma-separated list without empty items, got {text!r}")
    return list(dict.fromkeys(items))


@dataclass
class Settings:
    """A run's settings, all resolved: the profile's values where ``bench`` was given none."""

    profile: str
    methods: list[str]
    inputs: list[str]
    targets: int
    k: int
    draws: int
    samples: int
    gallery: int
    seed: int
    overrides: dict[str, dict[str, Any]]
    refine: int = 0
    budgets: list[int] = field(default_factory=list)  # renders per target where the search rows record their best so far
    targets_from: str = "test"  # one of targets.TARGET_SOURCES
    target_noise_seed: int | None = None  # None: the generator's default render
    gradient: int = 0  # steps of the gradient stage in METHOD+refine+gradient rows (0: no such rows)
    screen_factor: int = SCREEN_FACTOR  # the search rows' refine option screen_factor

    def targets_key(self) -> dict[str, Any] | None:
        """What the targets are, where they are not the store's test clips as it holds them (None there):
        results made on other targets are never reused."""
        if self.targets_from == "test" and self.target_noise_seed is None:
            return None
        return {"from": self.targets_from, "noise_seed": self.target_noise_seed}

    def overrides_for(self, method: str, input: str) -> dict[str, Any]:
        """``overrides[method]`` updated by ``overrides["method:input"]``."""
        return {**self.overrides.get(method, {}), **self.overrides.get(f"{method}:{input}", {})}


def make_settings(profile: str, methods, inputs, targets, k, draws, samples, gallery, seed, overrides, refine=None, budgets=None,
                  targets_from="test", target_noise_seed=None, gradient=0, screen_factor=None) -> Settings:
    """``bench``'s arguments over the profile's defaults, checked: a bad one raises ``InputError`` before any work.

    ``screen_factor`` (None: the inverter's ``SCREEN_FACTOR``) is the search rows' refine option:
    a method that screens its search's proposals (a ``proxy``) renders one in that many.

    ``budgets`` (increasing render counts, or ``"16,64"``) default to the profile's, else
    ``DEFAULT_BUDGETS``, each with the search rows' own budget (draws + refine) added.
    """
    targets_from, target_noise_seed = target_options(targets_from, target_noise_seed)
    prof = get_profile(profile)
    known = method_names()
    if methods is None:
        # a profile names every method it knows settings for; run those this wavinv has
        missing = [m for m in prof["methods"] if m not in known]
        if missing:
            log.warning("profile %s: methods %s are not available here; skipping them", profile, ", ".join(missing))
        methods = [m for m in prof["methods"] if m in known]
    methods = parse_list(methods, "methods")
    inputs = parse_list(inputs, "inputs") or prof["inputs"]
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise InputError(f"unknown method {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    bad = [i for i in inputs if i not in INPUTS]
    if bad:
        raise InputError(f"unknown input {', '.join(map(repr, bad))} (known: {', '.join(INPUTS)})")
    # the prior is the chance level every table shows: always there, first
    methods = ["prior"] + [m for m in methods if m != "prior"]
    merged = {m: dict(v) for m, v in prof.get("overrides", {}).items()}
    for name, ov in (overrides or {}).items():
        merged[name] = {**merged.get(name, {}), **ov}
    s = Settings(
        profile=profile,
        methods=methods,
        inputs=inputs,
        targets=int_arg("targets", prof["targets"] if targets is None else targets, 1),
        k=int_arg("k", prof["k"] if k is None else k, 1),
        draws=int_arg("draws", prof["draws"] if draws is None else draws, 1),
        samples=int_arg("samples", prof["samples"] if samples is None else samples, 2),
        gallery=int_arg("gallery", prof.get("gallery", 3) if gallery is None else gallery, 0),
        seed=int_arg("seed", prof.get("seed", 0) if seed is None else seed, 0),
        overrides=merged,
        refine=int_arg("refine", prof.get("refine", 0) if refine is None else refine, 0),
        targets_from=targets_from,
        target_noise_seed=target_noise_seed,
        gradient=int_arg("gradient", gradient or 0, 0),
        screen_factor=SCREEN_FACTOR if screen_factor is None else int_arg("screen_factor", screen_factor, 1, MAX_SCREEN_FACTOR),
    )
    if s.gradient and not s.refine:
        raise InputError(f"gradient {s.gradient}: the gradient stage follows a search; give refine R (its renders include the gradient's)")
    if s.k > s.draws:
        raise InputError(f"k (candidates kept) must be <= draws, got k={s.k}, draws={s.draws}")
    if budgets is not None:
        s.budgets = budget_list(budgets)
    else:
        s.budgets = sorted({*budget_list(prof.get("budgets", DEFAULT_BUDGETS)), *([s.draws + s.refine] if s.refine else [])})
    return s


def pairs_of(s: Settings) -> list[tuple[str, str]]:
    """Every (method, input); the prior ignores its input, so it runs once."""
    return [("prior", s.inputs[0])] + [(m, i) for m in s.methods if m != "prior" for i in s.inputs]


@dataclass(frozen=True)
class Entry:
    """One row of the table: a fitted method and how it is inverted."""

    label: str
    method: str
    input: str
    sampler: str | None = None
    refine: int = 0  # extra renders per target spent on search through the generator
    gradient: int = 0  # of those, steps of gradient descent through the generator (wavinv.gradient) from each of its best points
    draws: int | None = None  # None: the settings' draws

    @property
    def searches(self) -> bool:
        """A row with a search (``+refine`` rows, cma-search, random-search): it records its best lsd_db so far."""
        return bool(self.refine) or self.draws is not None


def make_entries(s: Settings) -> list[Entry]:
    """The table's rows.

    A neural method trained with the flow head also samples by latent noise
    (``sampler="latent-noise"``) from the same fit, so both sampling heads get a
    row, ``"METHOD+latent-noise"``, for the cost of one training. With
    ``refine`` > 0 every method gets a ``METHOD+refine`` row from the same fit,
    and two peers that learn nothing get rows at the same render budget
    (draws + refine): ``cma-search`` (the prior's draws refined: search alone)
    and ``random-search`` (the best of draws + refine random patches). With
    ``gradient`` > 0 each ``METHOD+refine`` row has a ``METHOD+refine+gradient``
    twin whose search ends with that many gradient steps through the generator
    from its best points, out of the same budget (a differentiable generator only).
    """
    rows = []
    for method, input in pairs_of(s):
        rows.append(Entry(method, method, input))
        estimator = build_method(method, **s.overrides_for(method, input))
        estimator.check_hyper_parameters()  # a bad value is refused before any store or model is written
        params = estimator.get_params()
        if "sampler" in params and params.get("head") == "flow":
            rows.append(Entry(f"{method}+latent-noise", method, input, "latent-noise"))
        if s.refine and method == "prior":
            rows.append(Entry("random-search", method, input, draws=s.draws + s.refine))
            rows.append(Entry("cma-search", method, input, refine=s.refine))
        elif s.refine:
            rows.append(Entry(f"{method}+refine", method, input, refine=s.refine))
            if s.gradient:
                rows.append(Entry(f"{method}+refine+gradient", method, input, refine=s.refine, gradient=s.gradient))
    return rows


def published_targets(results: str | Path, span: str) -> list[int]:
    """The target ids ``span`` (``"lo:hi"``, a slice) of a finished run's ``results.json``; ``InputError`` otherwise."""
    try:
        lo, hi = (int(x) for x in span.split(":"))
    except ValueError:
        raise InputError(f"--targets {span!r} must be lo:hi") from None
    try:
        ids = [int(i) for i in json.loads(Path(results).read_text())["meta"]["target_ids"][lo:hi]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{results} cannot be read as a bench run's results: {type(e).__name__}: {e}") from None
    if not ids:
        raise InputError(f"--targets {span} selects none of the run's targets")
    return ids
