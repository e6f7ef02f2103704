"""Scoring one row on its targets: invert each, re-render, and keep the per-target metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..inverter import Inverter
from ..metrics import coverage, diversity, param_mae
from ..store import Store
from ..targets import Target
from .cache import gallery_path, write_json
from .settings import Entry, Settings
from .targets import BenchTargets

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


def target_seeds(seed: int, row: int) -> tuple[int, int]:
    """Two independent seeds per target (draws, samples), the same for every method."""
    a, b = np.random.SeedSequence([seed, row]).generate_state(2)
    return int(a), int(b)


def evaluate(
    inv: Inverter, gen, store: Store, s: Settings, entry: Entry, targets: BenchTargets, ev: dict, ev_path: Path, out: Path, name: str, progress: bool
) -> None:
    """Invert each target not yet in ``ev``; save after every target so an interruption loses one."""
    gallery_rows = {int(r) for r in targets.ids[: s.gallery]}
    todo = [(j, int(r)) for j, r in enumerate(targets.ids) if str(int(r)) not in ev["targets"]]
    for j, row in tqdm(todo, desc=name, unit="target", leave=False, disable=not progress):
        wave = targets.waves[j]
        seed_draws, seed_samples = target_seeds(s.seed, row)
        res = inv.invert(
            Target("waveform", wave, f"{store.location.name}: {targets.label(j)}"),
            n=s.k,
            draws=entry.draws or s.draws,
            generator=gen,
            random_state=seed_draws,
            refine=entry.refine,
            refine_options=({"screen_factor": s.screen_factor} | ({"gradient": entry.gradient} if entry.gradient else {})) if entry.refine else None,
            budgets=s.budgets if entry.searches else None,
        )
        X = wave[None] if inv.input == "waveform" else res.target_spectrogram[None]
        samples = inv.sample(X, s.samples, random_state=seed_samples)[0]
        truth = targets.params_unit[j]
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
            **res.costs(),
        }
        if res.anytime:  # [[renders, best lsd_db by then], ...], the last at n_renders
            ev["targets"][str(row)]["anytime"] = [[b, v] for b, v in res.anytime]
        write_json(ev_path, ev)
