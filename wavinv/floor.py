"""The same-sound floor: what a target's own parameters score, the other end of gap closed from chance.

Two renders of the true parameters can stand for "the same sound": with another
noise seed (the same patch, other noise), or their own default render (the one
every candidate gets). Another seed is the floor only while no candidate can
reproduce the target's exact noise. A generator whose default render repeats
its noise (a fixed noise table, one seed for every patch) lets parameters next
to the truth reproduce it, and a search then goes below "another seed". So a
probe decides, on a few targets with known parameters:

- ``nearby``: lsd_db of the true parameters moved by ``NUDGE`` on the unit scale
  (default render), what a candidate next to the truth scores;
- ``other_seed``: lsd_db of the true parameters rendered with another seed.

The floor is the own render when the generator takes no seed, when another seed
changes nothing, or when ``nearby`` is under ``REPRODUCES`` of ``other_seed`` on
most probe targets; otherwise another seed. ``Inverter.floor_level`` and the
bench's floor row both decide by ``probe_floor``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .generators import render_checked, takes_seed

__all__ = ["probe_floor", "floor_waves"]

# the unit-scale move of every parameter that makes "nearby parameters": far below any sound's resolution
NUDGE = 1e-6
# the noise seed of the other-seed floor (unless the targets use it: then the next one)
FLOOR_SEED = 1
# targets the bench probes
PROBE_TARGETS = 8
# nearby parameters reproduce the noise when they score under this share of another seed: without the
# noise, both are "the same patch with other noise" and would tie, each lower on about half the targets
REPRODUCES = 0.5
# lsd_db (dB) under which another seed "changes nothing"
SAME_DB = 1e-3

OWN_RENDER, OTHER_SEED = "own render", "another seed"
# what each floor is, in the words of tables and pages
DESCRIPTION = {
    OWN_RENDER: "the true parameters' own render",
    OTHER_SEED: "the true parameters re-rendered with another noise seed",
}


def other_seed(target_seed: int | None) -> int:
    """A noise seed other than the targets' (``None``: their default render)."""
    return FLOOR_SEED + 1 if target_seed == FLOOR_SEED else FLOOR_SEED


def nudged(space, params: np.ndarray) -> np.ndarray:
    """``params`` (natural units) with every parameter moved by ``NUDGE`` on the unit scale, inward at the top."""
    unit = space.to_unit(params)
    return space.from_unit(np.where(unit + NUDGE <= 1.0, unit + NUDGE, unit - NUDGE))


def probe_floor(gen, params: np.ndarray, distance: Callable[[np.ndarray], np.ndarray], target_seed: int | None = None) -> dict[str, Any]:
    """Which floor means the same sound for ``gen``, from probe targets with true parameters ``params`` (natural, (n, P)).

    ``distance(waves (n, n_samples)) -> (n,)`` scores each wave against its target (lsd_db);
    ``target_seed`` is the noise seed the targets were rendered with (``None``: the default render).
    Returns the decision (``kind``, ``seed`` to render the floor with, ``reason``) and the probe figures.
    """
    params = np.asarray(params, dtype=np.float64)
    nearby = np.asarray(distance(render_checked(gen, nudged(gen.space, params))), dtype=np.float64)
    seeded = takes_seed(gen)
    seed = other_seed(target_seed)
    other = np.asarray(distance(render_checked(gen, params, seed=seed)), dtype=np.float64) if seeded else None
    n = len(params)
    closer = None if other is None else int(np.sum(nearby < REPRODUCES * other))
    if other is None:
        kind, reason = OWN_RENDER, "the generator takes no noise seed"
    elif 2 * np.sum(other < SAME_DB) > n:
        kind, reason = OWN_RENDER, "another noise seed changes nothing"
    elif 2 * closer > n:
        kind, reason = OWN_RENDER, "parameters next to the truth reproduce the target's noise"
    else:
        kind, reason = OTHER_SEED, "parameters next to the truth do not reproduce the target's noise"
    return {
        "kind": kind,
        "seed": seed if kind == OTHER_SEED else None,
        "reason": reason,
        "probe_targets": n,
        "nudge": NUDGE,
        "nearby": [float(v) for v in nearby],
        "other_seed": None if other is None else [float(v) for v in other],
        "nearby_closer": closer,  # probe targets where nearby < REPRODUCES * other_seed
        "target_seed": target_seed,
    }


def floor_waves(gen, params: np.ndarray, floor: dict[str, Any]) -> np.ndarray:
    """The floor's renders of the true parameters ``params``, as ``probe_floor`` decided."""
    return render_checked(gen, np.asarray(params, dtype=np.float64), seed=floor["seed"])


def floor_sentence(floor: dict[str, Any]) -> str:
    """One sentence: which floor, why, with the probe's figures."""
    n, nearby, other = floor["probe_targets"], floor["nearby"], floor["other_seed"]
    figures = f"the true parameters moved by {floor['nudge']:g} on the unit scale scored a median {np.median(nearby):.2f} dB"
    if other is not None:
        figures += (f", re-rendered with another noise seed {np.median(other):.2f} dB; moved, they scored under "
                    f"{REPRODUCES:g} x another seed's distance on {floor['nearby_closer']} of {n}")
    own = " (0 dB where the target is their default render)" if floor["kind"] == OWN_RENDER and floor["target_seed"] is None else ""
    return f"The floor is {DESCRIPTION[floor['kind']]}{own}: {floor['reason']} (probe on {n} target{'s' * (n != 1)}: {figures})."
