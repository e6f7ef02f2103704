"""Scoring one row on its targets: invert each, re-render, and keep the per-target metrics.

Also the same-sound floor: each target's true parameters rendered with another
noise seed and scored as a candidate would be.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..generators import render_checked
from ..inverter import Inverter
from ..metrics import coverage, diversity, lsd_db, mrstft, param_mae
from ..pictures import store_picture
from ..store import Store
from ..targets import Target
from .cache import gallery_path, read_json, write_json
from .settings import Entry, Settings

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

# The floor renders each target's true parameters with this noise seed (any seed but the default).
FLOOR_SEED = 1


def target_seeds(seed: int, row: int) -> tuple[int, int]:
    """Two independent seeds per target (draws, samples), the same for every method."""
    a, b = np.random.SeedSequence([seed, row]).generate_state(2)
    return int(a), int(b)


def evaluate(
    inv: Inverter, gen, store: Store, s: Settings, entry: Entry, positions, rows, ev: dict, ev_path: Path, out: Path, name: str, progress: bool
) -> None:
    """Invert each target not yet in ``ev``; save after every target so an interruption loses one."""
    waves = store.waveforms("test")
    y_test = store.params_unit("test")
    gallery_rows = {int(r) for r in rows[: s.gallery]}
    todo = [(int(p), int(r)) for p, r in zip(positions, rows) if str(int(r)) not in ev["targets"]]
    for pos, row in tqdm(todo, desc=name, unit="target", leave=False, disable=not progress):
        wave = waves[pos]
        seed_draws, seed_samples = target_seeds(s.seed, row)
        res = inv.invert(
            Target("waveform", wave, f"{store.location.name}#id{row}"),
            n=s.k,
            draws=entry.draws or s.draws,
            generator=gen,
            random_state=seed_draws,
            refine=entry.refine,
            budgets=s.budgets if entry.searches else None,
        )
        X = wave[None] if inv.input == "waveform" else res.target_spectrogram[None]
        samples = inv.sample(X, s.samples, random_state=seed_samples)[0]
        truth = y_test[pos]
        lsd = res.distances["lsd_db"]
        if row in gallery_rows:
            # float16 dB is within 0.06 dB at -100 dB: plenty for a picture; the clip and parameters are for the report page
            np.savez_compressed(
                gallery_path(out, name, row),
                target=res.target_spectrogram.astype(np.float16),
                best=res.spectrograms[0].astype(np.float16),
                wave=res.waveforms[0].astype(np.float32),
                params=res.params[0],
            )
        ev["targets"][str(row)] = {
            "lsd_db_best": float(lsd[0]),
            "lsd_db_median": float(np.median(lsd)),
            "mrstft_best": float(np.min(res.distances["mrstft"])),
            "param_mae_best": float(param_mae(truth, res.params_unit[0])),
            "param_mae_mean": float(param_mae(truth, samples.mean(axis=0))),
            "diversity": float(diversity(samples)),
            "spread": float(diversity(res.params_unit)),
            "coverage80": float(coverage(truth[None], samples[None], level=0.8)),
            "invert_s": float(res.timing["total"]),
            "n_candidates": int(len(lsd)),
            "n_unique": int(res.n_unique),
            "n_renders": int(res.n_renders),
        }
        if res.anytime:  # [[renders, best lsd_db by then], ...], the last at n_renders
            ev["targets"][str(row)]["anytime"] = [[b, v] for b, v in res.anytime]
        write_json(ev_path, ev)


def evaluate_floor(gen, store: Store, positions, rows, out: Path, progress: bool) -> dict[str, Any]:
    """The same-sound floor per target: its true parameters rendered with ``FLOOR_SEED``, scored as a candidate.

    Saved in ``evals/floor.json`` and reused while the store and targets match.
    """
    path = out / "evals" / "floor.json"
    key = {"store": store.fingerprint, "seed": FLOOR_SEED, "frontend": store.frontend_config, "wavinv": __version__}
    ev = read_json(path)
    if not ev or ev.get("key") != json.loads(json.dumps(key, default=str)):
        ev = {"key": key, "method": "floor", "targets": {}}
    todo = [(int(p), int(r)) for p, r in zip(positions, rows) if str(int(r)) not in ev["targets"]]
    if not todo:
        return ev
    from ..frontend import spectrogram

    frontend = store_picture(store, gen)  # the store's picture, as every row is scored
    pos = np.array([p for p, _ in todo])
    # one read and one render for every target: the rows are independent
    waves = np.asarray(store.waveforms("test")[pos])
    others = render_checked(gen, store.params("test")[pos], seed=FLOOR_SEED)
    lsds = lsd_db(spectrogram(waves, frontend), spectrogram(others, frontend))
    for j, (_, row) in enumerate(tqdm(todo, desc="floor", unit="target", leave=False, disable=not progress)):
        lsd = float(lsds[j])
        ev["targets"][str(row)] = {
            "lsd_db_best": lsd,
            "lsd_db_median": lsd,
            "mrstft_best": float(np.asarray(mrstft(waves[j], others[j : j + 1]))[0]),
            "invert_s": 0.0,
            "n_unique": 1,
            "n_renders": 1,
        }
    write_json(path, ev)
    return ev
