"""Fit time of ``pca-lgbm`` and ``pca-lgbm-quantile`` against the number of clips.

    python benchmarks/fit_speed.py [--sizes 2000,5000,20000] [--bank 512] [--n-jobs N]
                                   [--methods pca-lgbm,pca-lgbm-quantile]

Inputs are 512 x 512 spectrograms of ``synth100`` (100 parameters): a bank of
``--bank`` rendered clips, served as a ``LazyArray`` whose row ``i`` is bank row
``i % bank`` (so 20,000 rows need no 21 GB; labels follow the rows). Without the
synth or the frontend, smooth synthetic spectrograms stand in.

For every size and method: the fit time split into reading + pooling the
spectrograms, the PCA (fit and projection), and LightGBM (plus, for the
quantile method, its calibration on held-out rows); the CPU seconds of the
process (disturbed far less than wall time by other work on the machine);
then a least-squares line ``t = a + b N`` through the measured sizes per stage,
and the time it gives at 20,000 clips (the targets: pca-lgbm <= 5 min,
pca-lgbm-quantile <= 10 min on 2 cores). Prediction latency is for 256 rows
and for the inverter's case, one target sampled 256 times. The PCA cost on raw
waveforms (16,352 samples, no pooling) is reported for the same sizes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import numpy as np

from wavinv.lazy import LazyArray
from wavinv.methods import build_method
from wavinv.models import PCALGBMQuantile, PCALGBMRegressor, features
from wavinv.models.features import FeatureReducer


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bank(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(spectrograms (n, 512, 512), waveforms (n, T), unit params (n, 100), source)``."""
    try:
        from wavinv import load_generator
        from wavinv.frontend import spectrogram

        gen = load_generator("synth100")
        y = gen.space.sample_unit(0, n, seed=seed)
        waves = gen.render(gen.space.from_unit(y))
        return spectrogram(waves), waves, y, "synth100 + wavinv.frontend (512 x 512 dB)"
    except ImportError:
        rng = np.random.default_rng(seed)
        y = rng.random((n, 100))
        f = np.arange(512)[None, :, None] / 512
        t = np.arange(512)[None, None, :] / 512
        spec = -((f - y[:, :1, None]) ** 2) * 400 - t * 60 * y[:, 1:2, None] + 40 * y[:, 2:3, None] - 60
        waves = np.sin(2 * np.pi * (100 + 2000 * y[:, :1]) * np.arange(16352)[None] / 16000)
        return spec.astype(np.float32), waves.astype(np.float32), y, "synthetic spectrograms (no synth100 found)"


def cycled(rows: np.ndarray, n: int) -> LazyArray:
    return LazyArray(n, rows.shape[1:], rows.dtype, lambda idx: rows[idx % len(rows)])


STAGES: dict[str, list[float]] = {}


def _add(key: str, wall: float, cpu: float) -> None:
    acc = STAGES.setdefault(key, [0.0, 0.0])
    acc[0] += wall
    acc[1] += cpu


def timed(key: str, fn):
    def wrapper(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(key, time.perf_counter() - t0, time.process_time() - c0)

    return wrapper


# Stage timers: reading + pooling X is features.pool_all, the rest of
# FeatureReducer.fit_transform is the PCA, train_boosters is LightGBM.
features.pool_all = timed("read+pool", features.pool_all)
FeatureReducer.fit_transform = timed("features", FeatureReducer.fit_transform)
for _cls in (PCALGBMRegressor, PCALGBMQuantile):
    _cls.train_boosters = timed("lightgbm", _cls.train_boosters)


def fit_once(name: str, X, y, n_jobs) -> tuple[object, dict]:
    """The fitted estimator and ``{stage: (wall s, CPU s)}``."""
    est = build_method(name, n_jobs=n_jobs, progress=False)
    STAGES.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    est.fit(X, y)
    total = (time.perf_counter() - t0, time.process_time() - c0)
    feat, pool, lgbm = STAGES["features"], STAGES["read+pool"], STAGES["lightgbm"]
    stages = {
        "read+pool": tuple(pool),
        "pca": (feat[0] - pool[0], feat[1] - pool[1]),
        "lightgbm": tuple(lgbm),
        "other": (total[0] - feat[0] - lgbm[0], total[1] - feat[1] - lgbm[1]),
        "total": total,
    }
    return est, stages


def line(ns: list[int], ts: list[float], at: int) -> float:
    if len(ns) == 1:
        return ts[0] * at / ns[0]
    b, a = np.polyfit(ns, ts, 1)
    return a + b * at


def latency(fn, repeats: int = 5) -> tuple[float, float]:
    """Median wall and median process-CPU seconds of ``repeats`` calls after a warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,5000,20000")
    parser.add_argument("--bank", type=int, default=512)
    parser.add_argument("--methods", default="pca-lgbm,pca-lgbm-quantile")
    parser.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")

    import lightgbm
    import sklearn

    print(f"# fit_speed  {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"# machine: {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, {platform.system()} {platform.release()}")
    print(f"# python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, lightgbm {lightgbm.__version__}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()
    specs, waves, params, source = bank(args.bank)
    print(f"# inputs: {source}; bank of {args.bank} clips rendered in {time.perf_counter() - t0:.1f} s")
    for name in methods:
        print(f"# {name}: {build_method(name)!r}")
    print()

    stages = ("read+pool", "pca", "lightgbm", "other", "total")
    print("wall seconds / process CPU seconds per stage of fit()")
    print(f"{'method':<18} {'N':>6} " + " ".join(f"{k:>15}" for k in stages))
    results: dict = {name: {} for name in methods}
    last: dict = {}
    for n in sizes:
        X, y = cycled(specs, n), params[np.arange(n) % len(params)]
        for name in methods:
            est, st = fit_once(name, X, y, args.n_jobs)
            results[name][n] = st
            cells = " ".join(f"{st[k][0]:>7.1f} /{st[k][1]:>6.1f}" for k in stages)
            print(f"{name:<18} {n:>6} {cells}", flush=True)
            last[name] = (est, X)

    print("\nAt 20,000 clips (measured, or from a least-squares line t = a + b N through the measured sizes):")
    for name in methods:
        ns = sorted(results[name])
        how = "measured" if 20000 in results[name] else "extrapolated"
        at = {k: [line(ns, [results[name][m][k][i] for m in ns], 20000) for i in (0, 1)] for k in stages}
        if 20000 in results[name]:
            at = {k: list(results[name][20000][k]) for k in stages}
        cpu_sum = sum(at[k][1] for k in stages[:-1])
        shares = ", ".join(f"{k} {100 * at[k][1] / cpu_sum:.0f}%" for k in stages[:-1])
        print(f"  {name:<18} wall {at['total'][0] / 60:5.1f} min, CPU {at['total'][1] / 60:5.1f} min ({how}); CPU shares: {shares}")

    print("\nPrediction latency (median of 5, model fitted on the largest size):")
    for name in methods:
        est, X = last[name]
        rows = X[np.arange(256)]
        (pw, pc), (sw, sc) = latency(lambda: est.predict(rows)), latency(lambda: est.sample(rows[:1], 256, random_state=0))
        print(
            f"  {name:<18} predict 256 rows {1e3 * pw:6.0f} ms wall /{1e3 * pc:6.0f} ms CPU;"
            f"  sample 1 target x 256 draws {1e3 * sw:5.0f} ms wall /{1e3 * sc:5.0f} ms CPU  ({len(est.boosters_)} boosters)"
        )

    print("\nFeatures from raw waveforms (16,352 samples, no pooling; 64 components, as the recipes):")
    for n in sizes:
        t0, c0 = time.perf_counter(), time.process_time()
        FeatureReducer(n_components=64).fit_transform(cycled(waves, n))
        print(f"  N={n:>6}  {time.perf_counter() - t0:6.1f} s wall / {time.process_time() - c0:6.1f} s CPU")


if __name__ == "__main__":
    main()
