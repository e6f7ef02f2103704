"""Refinement settings side by side on a bench's targets: mean exact best/median-of-16 lsd_db, spread, time.

Inverts the targets of a published bench (its ``target_ids``, from the store's
test split) with one model, once per refine-options JSON given, with the same
per-target seeds as the bench, and prints one line per setting. For quick
comparisons of search settings and model sizes; the bench is the measurement
of record. Example (the 50k figures in benchmarks/README.md)::

    python benchmarks/refine_sweep.py --model knn-50k.joblib --store data/synth100-20k \\
        --results benchmarks/results/refine-20k/results.json --targets 0:60 --refine 2048 '{}'

An ``"estimator"`` key in a setting sets the model's hyper-parameters for it
(``'{"estimator": {"rounds": 4}}'``: a proxy's learnt rounds), the rest are
refine options; with ``--refine 0`` the settings compare models learnt alone.
With more than one setting, each later one is also compared with the first, target
by target: the mean difference of best-of-16 and median-of-16 with a 95% paired
bootstrap interval, and how many targets it wins. ``--save FILE.npz`` keeps the
first setting's per-target scores, and ``--against FILE.npz`` compares every setting
with them the same way: another model or store on the same targets.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from wavinv import load, open_store
from wavinv.bench import N_BOOT, boot_indices, bootstrap_ci, published_targets, target_seeds
from wavinv.errors import InputError, WavinvError
from wavinv.metrics import diversity
from wavinv.targets import Target

from refusal import refuse


def parse_setting(text: str) -> dict:
    """One setting: a JSON object of refine options, its ``"estimator"`` key an object of hyper-parameters."""
    try:
        setting = json.loads(text)
    except ValueError as e:
        refuse(f"setting {text!r} is not JSON: {e}")
    if not isinstance(setting, dict) or not isinstance(setting.get("estimator", {}), dict):
        refuse(f"setting {text!r} must be a JSON object, its \"estimator\" an object of the model's hyper-parameters")
    return setting


def check_hyper_parameters(estimator, settings: list[dict]) -> None:
    """Refuse, before any inversion, a setting naming a hyper-parameter the model's estimator lacks."""
    for setting in settings:
        unknown = sorted(set(setting.get("estimator", {})) - set(estimator.get_params()))
        if unknown:
            refuse(f"{type(estimator).__name__} has no hyper-parameter {', '.join(unknown)}")


def sweep(inv, store, ids: list[int], refine: int, setting: dict, gen, draws: int = 256) -> tuple[str, dict[str, np.ndarray]]:
    """The setting's line and its per-target ``{"best": ..., "median": ...}`` lsd_db."""
    options = dict(setting)
    inv.estimator.set_params(**options.pop("estimator", {}))
    position = {int(i): p for p, i in enumerate(store.ids("test"))}
    waves = store.waveforms("test")
    best, median, spread, seconds = [], [], [], []
    for row in ids:
        t = time.perf_counter()
        res = inv.invert(Target("waveform", waves[position[row]], str(row)), n=16, draws=draws, generator=gen,
                         random_state=target_seeds(0, row)[0], refine=refine, refine_options=dict(options))
        seconds.append(time.perf_counter() - t)
        lsd = res.distances["lsd_db"]
        best.append(lsd[0])
        median.append(np.median(lsd))
        spread.append(diversity(res.params_unit))
    line = (f"{json.dumps(setting):40s} draws={draws} R={refine} targets={len(ids)} best {np.mean(best):.2f} median {np.mean(median):.2f} "
            f"spread {np.mean(spread):.3f} s/target {np.mean(seconds):.2f}")
    return line, {"best": np.array(best), "median": np.array(median)}


def paired(first: dict[str, np.ndarray], other: dict[str, np.ndarray], label: str = "the first setting") -> str:
    """``other`` minus ``first`` (named ``label``) per target, as paired.py reports a bench's rows (negative: ``other`` closer)."""
    idx = boot_indices(len(first["best"]), N_BOOT, 0)
    cells = []
    for key in ("best", "median"):
        d = other[key] - first[key]
        mean, lo, hi = bootstrap_ci(d, indices=idx)
        cells.append(f"{key} {mean:+.2f} [{lo:+.2f}, {hi:+.2f}] dB (wins {int((d < 0).sum())}/{len(d)})")
    return f"  minus {label}: " + "; ".join(cells)


def save_scores(path: Path, ids: list[int], scores: dict[str, np.ndarray]) -> None:
    """Per-target scores for a later ``--against``, written whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp.npz")
    try:
        np.savez(tmp, ids=np.asarray(ids), best=scores["best"], median=scores["median"])
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        refuse(f"--save {path} cannot be written: {e.strerror or e}")


def saved_scores(path: Path, ids: list[int]) -> dict[str, np.ndarray]:
    """Scores ``--save`` wrote, refused unless they are of exactly these targets."""
    try:
        with np.load(path, allow_pickle=False) as f:
            saved = {key: np.asarray(f[key]) for key in ("ids", "best", "median")}
    except (OSError, ValueError, KeyError) as e:
        refuse(f"--against {path} cannot be read as scores refine_sweep.py --save wrote: {type(e).__name__}: {e}")
    if saved["ids"].tolist() != list(ids) or len(saved["best"]) != len(ids) or len(saved["median"]) != len(ids):
        refuse(f"--against {path} holds scores of other targets than --results and --targets select")
    return {"best": saved["best"].astype(float), "median": saved["median"].astype(float)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--store", required=True, help="the store whose test split holds the targets")
    p.add_argument("--results", required=True, help="a bench's results.json (its target_ids)")
    p.add_argument("--targets", default="0:60", help="slice of the bench's targets, lo:hi")
    p.add_argument("--refine", type=int, default=2048)
    p.add_argument("--draws", type=int, default=256, help="renders before the search (the draws and a proxy's learnt rounds)")
    p.add_argument("--generator", default=None, help="the model's generator spec when it is not built in (a file or module you name)")
    p.add_argument("--save", type=Path, default=None, help="write the first setting's per-target best and median lsd_db here (.npz)")
    p.add_argument("--against", type=Path, default=None,
                   help="compare every setting with scores --save wrote, of another model or store on the same targets")
    p.add_argument("options", nargs="+", help="refine options as JSON, e.g. '{}' or '{\"min_distance\": 0.1}'")
    args = p.parse_args()
    settings = [parse_setting(text) for text in args.options]
    try:
        ids = published_targets(args.results, args.targets)
    except InputError as e:
        refuse(str(e))
    if args.refine < 0:
        refuse(f"--refine must be 0 or more renders, got {args.refine}")
    if args.draws < 16:
        refuse(f"--draws must be at least 16 (the candidates kept), got {args.draws}")
    if args.save is not None and args.save.resolve() in {Path(f).resolve() for f in (args.model, args.results, args.store, args.against) if f is not None}:
        refuse(f"--save {args.save} is one of the inputs")
    if args.save is not None and (args.save.is_dir() or not args.save.parent.is_dir()):
        refuse(f"--save {args.save} must be a file in an existing folder")  # checked before the sweep, not after it
    against = None if args.against is None else saved_scores(args.against, ids)
    try:
        check_hyper_parameters(load(args.model).estimator, settings)
        first = None
        for setting in settings:
            inv = load(args.model)  # afresh: a setting's hyper-parameters do not carry into the next
            store = open_store(args.store)
            gen = inv.attach(args.generator)
            if not store.keeps_waveforms:
                store.attach(gen)  # its targets are re-rendered from their parameters
            line, scores = sweep(inv, store, ids, args.refine, setting, gen, args.draws)
            print(line, flush=True)
            if against is not None:
                print(paired(against, scores, str(args.against)), flush=True)
            if first is None:
                first = scores
                if args.save is not None:
                    save_scores(args.save, ids, scores)
            else:
                print(paired(first, scores), flush=True)
    except WavinvError as e:
        refuse(str(e))


if __name__ == "__main__":
    main()
