"""The bench's floor row: which render of the true parameters means "the same sound" (``wavinv.floor``), per target.

The decision is made once per bench run by ``probe_floor`` on its first
``PROBE_TARGETS`` targets (a prefix: asking for more targets later keeps it),
then each target's true parameters are rendered as decided and scored as a
candidate would be. Probe, decision and records are saved in ``evals/floor.json``
and reused while the store, the targets and the rule match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..floor import FLOOR_SEED, NUDGE, PROBE_TARGETS, REPRODUCES, floor_waves, probe_floor
from ..metrics import lsd_db, mrstft
from ..pictures import store_picture
from ..store import Store
from .cache import read_json, write_json
from .settings import Settings
from .targets import BenchTargets

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


def evaluate_floor(gen, store: Store, s: Settings, targets: BenchTargets, out: Path, progress: bool) -> dict[str, Any]:
    """``evals/floor.json``: the probe's figures and decision (``"probe"``) and each target's floor record (``"targets"``)."""
    from ..frontend import spectrogram

    path = out / "evals" / "floor.json"
    rule = {"seed": FLOOR_SEED, "nudge": NUDGE, "probe_targets": PROBE_TARGETS, "reproduces": REPRODUCES}
    key = {"store": store.fingerprint, "targets": s.targets_key(), "bench_seed": s.seed, "rule": rule, "frontend": store.frontend_config, "wavinv": __version__}
    ev = read_json(path)
    if not ev or ev.get("key") != json.loads(json.dumps(key, default=str)) or "probe" not in ev:
        ev = {"key": key, "method": "floor", "probe": None, "targets": {}}
    frontend = store_picture(store, gen)  # the store's picture, as every row is scored
    todo = [j for j, row in enumerate(targets.ids) if str(int(row)) not in ev["targets"]]
    if ev["probe"] is None:
        probe = np.arange(min(PROBE_TARGETS, len(targets.ids)))
        pictures = spectrogram(targets.waves[probe], frontend)
        ev["probe"] = probe_floor(gen, targets.params[probe], lambda waves: lsd_db(pictures, spectrogram(waves, frontend)), targets.noise_seed)
    if not todo:
        return ev
    # one render for every target: the rows are independent
    waves = targets.waves[todo]
    floors = floor_waves(gen, targets.params[todo], ev["probe"])
    lsds = lsd_db(spectrogram(waves, frontend), spectrogram(floors, frontend))
    for i, j in enumerate(tqdm(todo, desc="floor", unit="target", leave=False, disable=not progress)):
        lsd = float(lsds[i])
        ev["targets"][str(int(targets.ids[j]))] = {
            "lsd_db_best": lsd,
            "lsd_db_median": lsd,
            "mrstft_best": float(np.asarray(mrstft(waves[i], floors[i : i + 1]))[0]),
            "invert_s": 0.0,
            "n_unique": 1,
            "n_renders": 1,
        }
    write_json(path, ev)
    return ev
