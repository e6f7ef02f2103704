"""How much the sound changes when one parameter alone moves: each parameter's sensitivity.

``parameter_sensitivity`` renders each of some rows of parameters (a store's
validation rows), then each row again with ONE parameter redrawn from the prior
(uniform on the unit scale, as stores draw), and scores the two pictures by
lsd_db. A parameter's ``sensitivity_db`` is the median over the rows: near 0 dB
for a parameter the sound does not depend on, large for one it does. Beside a
model's per-parameter error (``inverter.learnt_parameters``) it tells a parameter
the model failed to learn from one the sound cannot tell apart.

A measurement beside a fit, so it is kept cheap: at most ``MAX_ROWS`` rows and
``MAX_RENDERS`` renders in all (fewer rows when there are many parameters:
``rows * (P + 1) <= MAX_RENDERS``, the first rows kept), each picture scored on
every ``step``-th frame of wavinv's STFT or mel (the same window at a longer hop,
as the inverter's shortlist scores), or on all frames where the picture has no
such subset (a CQT, the generator's own function). The redraws come from
``random_state`` before anything is rendered: the same rows, seed and generator
give the same numbers.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError
from .generators import Generator, render_finite
from .metrics import lsd_db

__all__ = ["MAX_RENDERS", "MAX_ROWS", "most_sensitive_first", "parameter_sensitivity"]

MAX_ROWS = 64
MAX_RENDERS = 1600
# clips rendered per call of the generator (a few parameters' redraws at once)
BATCH = 64


def parameter_sensitivity(
    gen: Generator,
    rows_unit: np.ndarray,
    picture,
    step: int,
    random_state: int = 0,
    max_rows: int = MAX_ROWS,
    max_renders: int = MAX_RENDERS,
    progress: bool = False,
) -> dict[str, Any]:
    """Each parameter's sensitivity on rows of unit-scaled parameters ``rows_unit`` (N, P) of ``gen``.

    ``picture`` is the module that pictures a clip (a ``Spectrogram`` or ``GeneratorPicture``);
    its every ``step``-th frame is scored when it has that subset. Returns ``{"sensitivity_db":
    {name: dB or None (no pair rendered finite)}, "rows", "renders", "frames", "seed"}``; the
    module docstring says how. ``InputError`` when not even one row fits in ``max_renders``.
    """
    space = gen.space
    n_params = len(space)
    rows_unit = np.asarray(rows_unit, dtype=np.float64)
    if rows_unit.ndim != 2 or rows_unit.shape[1] != n_params:
        raise InputError(f"rows must be unit-scaled parameters (N, {n_params}), got shape {rows_unit.shape}")
    n = min(int(max_rows), len(rows_unit), int(max_renders) // (n_params + 1))
    if n < 1:
        raise InputError(f"{n_params} parameters need {n_params + 1} renders for one row, over the cap of {max_renders}")
    rows = rows_unit[:n]
    redraws = np.random.default_rng(random_state).random((n_params, n))
    coarse = getattr(picture, "kind", None) in ("stft", "mel")
    module = picture.every_nth_frame(step) if coarse else picture
    per_call = max(1, BATCH // n)  # parameters whose redraws one render call takes
    with tqdm(total=n * (n_params + 1), desc="sensitivity", unit="render", disable=not progress, leave=False) as bar:
        base = _pictures(gen, module, rows, bar)
        scores = np.full(n_params, np.nan)
        for first in range(0, n_params, per_call):
            params = np.arange(first, min(first + per_call, n_params))
            moved = np.repeat(rows[None], len(params), axis=0)  # (p, n, P)
            moved[np.arange(len(params)), :, params] = redraws[params]
            pics = _pictures(gen, module, moved.reshape(-1, n_params), bar)
            distances = lsd_db(base[None], pics.reshape(len(params), n, *pics.shape[1:]))  # (p, n), NaN where a render failed
            for j, d in zip(params, distances):
                if np.isfinite(d).any():
                    scores[j] = float(np.nanmedian(d))
    return {
        "sensitivity_db": {p.name: (round(float(v), 3) if np.isfinite(v) else None) for p, v in zip(space.params, scores)},
        "rows": int(n),
        "renders": int(n * (n_params + 1)),
        "frames": f"every {step}th frame" if coarse else "all frames",
        "seed": random_state,
    }


def most_sensitive_first(learnt: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The rows of a model's ``validation["learnt"]`` (name -> its numbers), the highest ``sensitivity_db``
    first; rows without one (not measured, or no finite render) last, in their order."""
    rows = [(name, row) for name, row in learnt.items() if isinstance(row, Mapping)]

    def key(item) -> float:
        db = item[1].get("sensitivity_db")
        return -float(db) if isinstance(db, (int, float)) else np.inf

    return sorted(rows, key=key)


def _pictures(gen: Generator, module, unit: np.ndarray, bar) -> np.ndarray:
    """Pictures of the clips of ``unit`` (M, P); a clip the generator renders with NaN or Inf gives NaN."""
    from .frontend import spectrogram  # torch: imported only when something is measured

    waves, finite = render_finite(gen, gen.space.from_unit(unit))
    bar.update(len(unit))
    pics = spectrogram(waves, module).astype(np.float64)
    pics[~finite] = np.nan
    return pics
