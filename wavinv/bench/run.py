"""The ``bench`` driver: fit, invert and score every row of a store's table, then write the report."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..errors import InputError, StoreError
from ..generators import recorded_generator, takes_seed
from ..inverter import inversion_memory
from ..limits import require_memory
from ..outputs import check_output_dir
from ..picture import picture_label
from ..refine import MIN_DISTANCE, SEARCH_VERSION
from ..store import Store, open_store, same_generator
from .cache import fit_or_load, hash_key, model_info, read_json
from .evaluate import evaluate, evaluate_floor
from .provenance import command_line, machine_info
from .report import write_outputs
from .settings import make_entries, make_settings, pairs_of
from .stats import LEVEL, N_BOOT
from .table import table_rows

# one logger for the whole package: its lines read "wavinv.bench: ..." wherever they come from
log = logging.getLogger(__package__)


@dataclass
class BenchResult:
    """What ``bench`` wrote: rows (as in ``results.csv``), provenance, files and what was reused."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    out: Path
    files: dict[str, Path]
    fitted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        return (self.out / "results.md").read_text()

    def summary(self) -> str:
        """A few lines for a terminal: lsd_db best-of-K with its interval, and the costs."""
        lines = [f"{'method':<24} {'input':<12} {'lsd_db best-of-K [95% CI]':<28} {'gap closed':>10} {'fit s':>8} {'invert s':>9}"]
        for r in self.rows:
            ci = f"{r['lsd_db_best']:.2f} [{r['lsd_db_best_lo']:.2f}, {r['lsd_db_best_hi']:.2f}]"
            lines.append(f"{r['method']:<24} {r['input']:<12} {ci:<28} {r['gap_closed']:>10.2f} {r['fit_s']:>8.1f} {r['invert_s']:>9.2f}")
        done = f"{len(self.fitted)} fitted, {len(self.reused)} reused, {len(self.evaluated)} evaluated"
        lines.append(f"{self.out / 'results.md'} ({done}; {self.meta['wall_s']:.0f} s)")
        return "\n".join(lines)


def bench(
    store: str | os.PathLike | Store,
    out: str | os.PathLike,
    methods: str | Sequence[str] | None = None,
    inputs: str | Sequence[str] | None = None,
    profile: str = "quick",
    targets: int | None = None,
    k: int | None = None,
    draws: int | None = None,
    samples: int | None = None,
    gallery: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    generator: str | None = None,
    command: str | None = None,
    progress: bool = True,
    refine: int | None = None,
) -> BenchResult:
    """Fit, invert and score every (method, input) pair; write tables and plots into ``out``.

    Settings not given come from ``profile`` (``PROFILES``). ``targets`` test-split
    clips are inverted, keeping the best ``k`` of ``draws`` draws each; diversity,
    coverage@80 and param_mae of the mean use ``samples`` more draws per target.
    ``overrides`` maps a method (or ``"method:input"``) to hyper-parameters.
    ``refine`` > 0 adds ``METHOD+refine`` rows and the search peers (see ``make_entries``).
    A generator that takes a seed gets a ``floor`` row: each target's true
    parameters re-rendered with another noise seed.
    ``generator`` re-renders candidates (default: the store's built-in generator).
    ``command`` is recorded as the command that made the results (default: the
    equivalent ``wavinv bench`` command). Bad settings raise ``InputError``, a
    missing or incomplete store ``StoreError``.
    """
    s = make_settings(profile, methods, inputs, targets, k, draws, samples, gallery, seed, overrides, refine)
    store = store if isinstance(store, Store) else open_store(store)
    store.require_complete()
    if "spectrogram" in s.inputs and store.frontend_config is None:
        raise StoreError(f"{store.location} records no frontend, so it has no spectrograms: use --inputs waveform")
    test_idx = store.split_indices("test")
    if len(test_idx) == 0:
        raise InputError(f"{store.location}: the test split is empty; generate more samples")
    if s.targets > len(test_idx):
        log.warning("%s has %d test clips; using all of them, not %d", store.location, len(test_idx), s.targets)
    # a prefix of one fixed permutation: asking for more targets later keeps the first ones
    positions = np.random.default_rng(np.random.SeedSequence([s.seed, 7])).permutation(len(test_idx))[: s.targets]
    rows = test_idx[positions]
    entries = make_entries(s)  # builds every estimator: a bad hyper-parameter fails now, not an hour in
    gen = recorded_generator(store.generator, generator, str(store.location), same_generator, StoreError)
    store.attach(gen)  # re-renders the targets of a store without waveforms
    fe = store.frontend_config
    spec_shape = (fe["n_freq"], fe["n_frames"]) if fe else (1, 1)
    need = inversion_memory(store.n_samples, len(store.space), spec_shape, max(s.draws, s.samples), 4 * s.k)
    require_memory(need, f"{max(s.draws, s.samples)} draws per target")

    out = Path(out)
    check_output_dir("--out", out, {"store": store.location.local})
    for sub in ("models", "evals"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    result = BenchResult(rows=[], meta={}, out=out, files={})
    evals: dict[tuple[str, str], dict[str, Any]] = {}
    t_start = time.perf_counter()
    pairs = [(e.label, e.input) for e in entries]
    bar = tqdm(entries, desc="bench", unit="row", disable=not progress)
    # bars inside a row's bar redraw it with cursor moves: only on a terminal, never into a log file
    inner = progress and sys.stderr.isatty()
    for entry in bar:
        label, method, input, sampler = entry.label, entry.method, entry.input, entry.sampler
        bar.set_postfix_str(f"{label}/{input}")
        name, model_name = f"{label}-{input}", f"{method}-{input}"
        model_key = {
            "store": store.fingerprint,
            "method": method,
            "input": input,
            "overrides": s.overrides_for(method, input),
            "profile": s.profile,
            "wavinv": __version__,
        }
        eval_key = {"model": hash_key(model_key), "k": s.k, "draws": s.draws, "samples": s.samples, "seed": s.seed, "gallery": s.gallery}
        if sampler is not None:
            eval_key["sampler"] = sampler
        if entry.refine:
            eval_key["refine"] = entry.refine
            eval_key["search"] = {"version": SEARCH_VERSION, "min_distance": MIN_DISTANCE}
        if entry.draws is not None:
            eval_key["draws"] = entry.draws
        ev_path = out / "evals" / f"{name}.json"
        ev = read_json(ev_path)
        if not ev or ev.get("key") != json.loads(json.dumps(eval_key)):
            ev = {"key": eval_key, "method": label, "input": input, "model_name": model_name, "targets": {}}
        todo = [int(r) for r in rows if str(int(r)) not in ev["targets"]]
        model = model_info(out, model_name, model_key)
        if todo or model is None:
            cached = model is not None
            inv, model = fit_or_load(store, gen, out, model_name, model_key, method, input, model, inner)
            (result.reused if cached else result.fitted).append(model_name)
            if sampler is not None:
                inv.estimator.set_params(sampler=sampler)
            if todo:
                evaluate(inv, gen, store, s, entry, positions, rows, ev, ev_path, out, name, inner)
                result.evaluated.append(name)
        else:
            result.reused.append(name)
            log.info("%s: model and all %d target results reused", name, len(rows))
        evals[(label, input)] = {"model": model, "records": [ev["targets"][str(int(r))] for r in rows]}
    bar.close()
    if takes_seed(gen):
        floor = evaluate_floor(gen, store, s, positions, rows, out, inner)
        pairs.append(("floor", s.inputs[0]))
        evals[("floor", s.inputs[0])] = {"model": {"fit_s": 0.0, "model_mb": 0.0}, "records": [floor["targets"][str(int(r))] for r in rows]}

    result.rows = table_rows(evals, pairs, s)
    meta = {
        "title": f"wavinv benchmark: {store.generator['name']} v{store.generator['version']}",
        "command": command or command_line(store, out, s, generator),
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "store": {
            "path": str(store.location),
            "fingerprint": store.fingerprint,
            "generator": f"{store.generator['name']} v{store.generator['version']}",
            "n": store.n,
            "n_train": int(len(store.split_indices("train"))),
            "n_test": int(len(test_idx)),
            "seed": store.seed,
            "picture": picture_label(store.frontend_config),
        },
        "settings": {
            "profile": s.profile,
            "methods": s.methods,
            "inputs": s.inputs,
            "targets": int(len(rows)),
            "k": s.k,
            "draws": s.draws,
            "samples": s.samples,
            "seed": s.seed,
            "refine": s.refine,
            "bootstrap": {"resamples": N_BOOT, "level": LEVEL},
            "overrides": {f"{m}:{i}": s.overrides_for(m, i) for m, i in pairs_of(s) if s.overrides_for(m, i)},
        },
        "target_ids": [int(r) for r in rows],
        "wall_s": round(time.perf_counter() - t_start, 1),
        # summed over every run that contributed (a resumed bench reuses earlier work)
        "fit_wall_s": round(sum(ev["model"].get("fit_wall_s", ev["model"]["fit_s"]) for ev in evals.values()), 1),
        "invert_wall_s": round(sum(r["invert_s"] for ev in evals.values() for r in ev["records"]), 1),
    }
    result.meta = meta
    result.files = write_outputs(out, result.rows, meta, evals, pairs, rows, s, store)
    return result
