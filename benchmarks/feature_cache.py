"""The feature cache: knn fit time with and without it, its build time, bytes on disk.

    python benchmarks/feature_cache.py --source data/synth100-20k --copy data/synth100-20k-cached
    python benchmarks/feature_cache.py --generate 50000 --out data/synth100-50k-nowave

The first form fits knn (spectrogram input, the baseline recipe) on ``--source``
(no cache: spectrograms computed as every fit did before the cache) and on
``--copy`` (a copy of it, to which the cache is added: its build is timed), in the
same process, checks the two models are the same, and prints disk usage with and
without waveforms (the store without its ``waveform/`` folder is exactly what
``generate --no-waveforms`` writes, record digests aside), with a linear
extrapolation to 200,000 clips. The second form times ``generate --no-waveforms``
of N synth100 clips and a knn fit on the result. Every figure is printed as measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from wavinv import open_store
from wavinv.generate import cache_features, generate
from wavinv.inverter import fit_inverter


def du(path: Path, skip: str | None = None) -> int:
    """Bytes of the files under ``path`` (leaving out the top-level folder ``skip``)."""
    total = 0
    for root, _, files in os.walk(path):
        if skip and Path(root).relative_to(path).parts[:1] == (skip,):
            continue
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def fit_knn(store) -> tuple[float, float, object]:
    """``(estimator fit seconds, wall seconds with validation, inverter)``."""
    print(f"  fitting knn on {store.location} ({load()})", flush=True)
    t0 = time.perf_counter()
    inv = fit_inverter(store, "knn", "spectrogram", progress=False)
    return inv.validation["fit_s"], time.perf_counter() - t0, inv


def compare(source: Path, copy: Path) -> None:
    if not copy.exists():
        t0 = time.perf_counter()
        shutil.copytree(source, copy)
        print(f"copied {source} -> {copy} in {time.perf_counter() - t0:.1f} s")
    plain, cached = open_store(source), open_store(copy)
    if cached.feature_caches():
        print(f"{copy} already holds caches {list(cached.feature_caches())}: build time not measured")
    else:
        t0 = time.perf_counter()
        cache = cache_features(copy, progress=False)
        print(f"cache build ({cache.label}, {cached.n} clips): {time.perf_counter() - t0:.1f} s ({load()} at the end)")
    cached = open_store(copy)
    fit_plain, wall_plain, inv_plain = fit_knn(plain)
    fit_cached, wall_cached, inv_cached = fit_knn(cached)
    same = np.array_equal(inv_plain.estimator.reducer_.pca_.components_, inv_cached.estimator.reducer_.pca_.components_) and np.array_equal(
        inv_plain.estimator.y_train_, inv_cached.estimator.y_train_
    )
    print(f"knn fit without cache: {fit_plain:.1f} s (wall with validation {wall_plain:.1f} s)")
    print(f"knn fit with cache:    {fit_cached:.1f} s (wall with validation {wall_cached:.1f} s)")
    print(f"ratio (estimator fit): {fit_plain / fit_cached:.1f}x; wall: {wall_plain / wall_cached:.1f}x; same model: {same} ({load()} at the end)")
    print(f"validation param_mae without / with: {inv_plain.validation['param_mae']:.6f} / {inv_cached.validation['param_mae']:.6f}")
    n = cached.n
    with_waves, features = du(copy), du(copy / "features")
    no_waves = du(copy, skip="waveform")
    print(f"bytes at {n} clips: with waveforms and no cache {with_waves - features:,}; with waveforms and cache {with_waves:,}; "
          f"cache alone {features:,}; without waveforms, with cache {no_waves:,}")
    scale = 200_000 / n
    print(f"EXTRAPOLATED linearly to 200,000 clips: with waveforms {(with_waves - features) * scale / 1e9:.1f} GB, "
          f"with waveforms and cache {with_waves * scale / 1e9:.1f} GB, without waveforms {no_waves * scale / 1e9:.1f} GB")


def generate_without_waveforms(n: int, out: Path, workers: int) -> None:
    t0 = time.perf_counter()
    print(f"  generating ({load()})", flush=True)
    store = generate(out, "synth100", n, seed=0, workers=workers, waveforms=False, progress=False)
    print(f"generate --no-waveforms --n {n} --workers {workers}: {time.perf_counter() - t0:.1f} s ({load()} at the end), {du(out):,} bytes on disk")
    fit_s, wall, inv = fit_knn(store)
    print(f"knn fit on it ({inv.store['n_train']} train clips): {fit_s:.1f} s (wall with validation {wall:.1f} s); "
          f"validation param_mae {inv.validation['param_mae']:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, help="a store without a feature cache (read only)")
    p.add_argument("--copy", type=Path, help="where its copy with the cache lives (made if missing)")
    p.add_argument("--generate", type=int, metavar="N", help="time generate --no-waveforms of N synth100 clips and a knn fit")
    p.add_argument("--out", type=Path, help="the store --generate writes")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    if args.source:
        compare(args.source, args.copy)
    if args.generate:
        generate_without_waveforms(args.generate, args.out, args.workers)


if __name__ == "__main__":
    main()
