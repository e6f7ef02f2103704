"""Invert latency per target, by stage, and what the shortlist costs in quality.

    python benchmarks/invert_speed.py [--store data/synth100-2k] [--methods prior,knn,pca-lgbm-quantile]
                                      [--targets 20] [--k 16] [--draws 256] [--models DIR]

Fits each method on the store's train split (spectrogram input; reused from
``--models`` when a model file is there), then inverts test-split waveforms
twice with the same draws: with the default shortlist (``4 * k`` draws kept
after ranking on every 8th frame) and with exact ranking of every draw. Prints
the median seconds per stage and in total for both, and the shortlist's effect
on lsd_db of the best candidate and on the median of the best K (the same draws,
so any difference is the shortlist's). The issue's target: K=16 from M=256 in
<= 1 s per target on 2 cores. The store is built (synth100, seed 0) if missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np
import torch

from wavinv.generate import generate
from wavinv.generators import load_generator
from wavinv.inverter import fit_inverter, load
from wavinv.store import is_store, open_store
from wavinv.targets import Target


def median_timing(results, key: str) -> float:
    return statistics.median(r.timing.get(key, 0.0) for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="data/synth100-2k")
    ap.add_argument("--n", type=int, default=2000, help="clips, if the store has to be built")
    ap.add_argument("--methods", default="prior,knn,pca-lgbm-quantile")
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--draws", type=int, default=256)
    ap.add_argument("--models", default="data/invert-speed-models", help="where fitted models are kept between runs")
    args = ap.parse_args()

    if not is_store(args.store):
        generate(args.store, "synth100", n=args.n, seed=0, progress=False)
    store = open_store(args.store)
    gen = load_generator("synth100")
    test = store.split_indices("test")[: args.targets]
    waves = store.waveforms()[test]
    models = Path(args.models)
    models.mkdir(parents=True, exist_ok=True)
    print(f"store {args.store} ({store.n} clips), {len(test)} test targets, K={args.k}, M={args.draws}")
    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    print()
    print("| method | stage | shortlist (s) | exact (s) |")
    print("|---|---|---|---|")
    quality = []
    for method in args.methods.split(","):
        path = models / f"{method}-{store.fingerprint}.joblib"
        if path.exists():
            inv = load(path)
        else:
            inv = fit_inverter(store, method, "spectrogram", progress=False)
            inv.save(path)
        inv.attach(gen)
        inv.invert(waves[0], n=args.k, draws=args.draws, random_state=0)  # warm up: kernels, thread pools
        fast, exact = [], []
        for i, w in enumerate(waves):
            t = Target("waveform", w, f"test {i}")
            fast.append(inv.invert(t, n=args.k, draws=args.draws, random_state=i))
            exact.append(inv.invert(t, n=args.k, draws=args.draws, random_state=i, shortlist=args.draws))
        for key in ("sample", "render", "shortlist", "score", "total"):
            print(f"| {method} | {key} | {median_timing(fast, key):.3f} | {median_timing(exact, key):.3f} |")
        d_best = [f.distances["lsd_db"][0] - e.distances["lsd_db"][0] for f, e in zip(fast, exact)]
        d_med = [np.median(f.distances["lsd_db"]) - np.median(e.distances["lsd_db"]) for f, e in zip(fast, exact)]
        same_best = sum(abs(d) < 1e-9 for d in d_best)
        unique = statistics.median(r.n_unique for r in fast)
        quality.append((method, unique, same_best, np.mean(d_best), np.max(d_best), np.mean(d_med), np.max(d_med)))
    print()
    print("shortlist vs exact ranking on the same draws (lsd_db, dB; positive = the shortlist did worse)")
    print("| method | distinct draws | same best | best: mean / max | median-of-K: mean / max |")
    print("|---|---|---|---|---|")
    for method, unique, same, mb, xb, mm, xm in quality:
        print(f"| {method} | {unique:.0f} | {same}/{len(test)} | {mb:+.3f} / {xb:+.3f} | {mm:+.3f} / {xm:+.3f} |")


if __name__ == "__main__":
    main()
