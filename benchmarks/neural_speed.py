"""Training speed and memory of the neural inverters, reading a real Zarr store.

    python benchmarks/neural_speed.py [--device cpu] [--sizes 2000,8000] [--seconds 60]
                                      [--methods conv1d,spec-cnn] [--heads flow,latent-noise] [--threads N]

Renders (once, cached under ``--data``) ``synth100`` stores of each size, then
for every method x head x size fits in a fresh process on the store's lazy
train-split waveforms, with default hyper-parameters, for ``--seconds`` of
training (``max_time``). Prints per run: mean train-step time (batch 64,
frontend included for spec-cnn), the share of step time spent waiting for
data (target < 10%), the epoch time that extrapolates to for 20,000 training
clips, the time to calibrate the sampling head, and peak resident memory
(``resource.getrusage``) with its growth over the process's memory before the
fit. Peak memory should not grow with the store size: the loader holds a few
blocks, never the split.

    python benchmarks/neural_speed.py --quality --sizes 8000 --seconds 600 [--targets 40] [--draws 16]

``--quality`` instead fits each method x head on the store's train split for
``--seconds`` and scores it on the first ``--targets`` clips of the test split:
best-of-K and median-of-K lsd_db of ``--draws`` re-rendered candidates,
param_mae of the point prediction and coverage@80 of 64 samples, next to the
prior (random parameters) and, when ``wavinv.methods`` has it, ``pca-lgbm``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

CLIPS = 20_000


def machine() -> str:
    import torch

    lines = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
    ]
    if torch.cuda.is_available():
        lines.append(f"gpu: {torch.cuda.get_device_name()}")
    try:
        lines.append(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    except OSError:
        pass
    return "\n".join(lines)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(args: argparse.Namespace) -> None:
    """One fit; prints one JSON line."""
    from wavinv.models.conv1d import Conv1dInverter
    from wavinv.models.spec_cnn import SpecCNNInverter
    from wavinv.store import open_store

    store = open_store(args.store)
    X, y = store.waveforms("train"), store.params_unit("train")
    cls = {"conv1d": Conv1dInverter, "spec-cnn": SpecCNNInverter}[args.method]
    est = cls(head=args.head, max_time=args.seconds, max_epochs=1000, patience=1000, device=args.device, n_threads=args.threads, progress=False)
    before = peak_mb()
    t0 = time.perf_counter()
    est.fit(X, y)
    wall = time.perf_counter() - t0
    st = est.fit_stats_
    print(json.dumps({
        "n_store": store.n,
        "n_train": len(y),
        "steps": st["steps"],
        "step_s": st["step_s"],
        "wait": st["data_wait_share"],
        "epoch_20k_s": st["step_s"] * CLIPS / est.batch_size,
        "calibrate_s": st["calibrate_s"],
        "fit_s": wall,
        "rss_before_mb": before,
        "rss_peak_mb": peak_mb(),
    }))


def quality(args: argparse.Namespace, store_path: Path) -> None:
    """Fit each method for a time budget; score candidates on test targets."""
    import numpy as np

    from wavinv.frontend import Spectrogram, spectrogram
    from wavinv.generators import load_generator, render_checked
    from wavinv.metrics import coverage, lsd_db, param_mae
    from wavinv.models.conv1d import Conv1dInverter
    from wavinv.models.spec_cnn import SpecCNNInverter
    from wavinv.store import open_store

    store = open_store(store_path)
    gen = load_generator(args.generator)
    fe = Spectrogram.from_config(store.frontend_config) if store.frontend_config else Spectrogram(n_samples=store.n_samples)
    keep = np.arange(min(args.targets, len(store.split_indices("test"))))
    Xt, yt = store.waveforms("test").take(keep)[:], store.params_unit("test")[keep]
    target_spec = spectrogram(Xt, fe)

    def score(name: str, samples: np.ndarray, pred: np.ndarray | None, fit_s: float, note: str = "") -> None:
        K = args.draws
        waves = render_checked(gen, store.space.from_unit(samples[:, :K].reshape(-1, samples.shape[2])))
        specs = spectrogram(waves, fe).reshape(len(keep), K, *target_spec.shape[1:])
        lsd = np.stack([lsd_db(target_spec[i], specs[i]) for i in range(len(keep))])
        mae = param_mae(yt, pred) if pred is not None else float("nan")
        print(f"{name:24} {np.min(lsd, axis=1).mean():8.2f} {np.median(lsd, axis=1).mean():8.2f} {mae:7.3f} {coverage(yt, samples):6.2f} {fit_s:7.0f}  {note}", flush=True)

    print(f"store {store_path}: {len(store.split_indices('train'))} train clips; {len(keep)} test targets, K={args.draws} candidates each")
    print(f"{'method':24} {'best lsd':>8} {'med lsd':>8} {'p_mae':>7} {'cov80':>6} {'fit s':>7}")
    rng = np.random.default_rng(0)
    score("prior", rng.uniform(size=(len(keep), 64, len(store.space))), np.full_like(yt, 0.5), 0.0, "random parameters; p_mae of predicting 0.5")
    X, y = store.waveforms("train"), store.params_unit("train")
    for method in args.methods.split(","):
        for head in args.heads.split(","):
            cls = {"conv1d": Conv1dInverter, "spec-cnn": SpecCNNInverter}[method]
            est = cls(head=head, max_time=args.seconds, device=args.device, n_threads=args.threads, progress=False)
            t0 = time.perf_counter()
            est.fit(X, y)
            fit_s = time.perf_counter() - t0
            st = est.fit_stats_
            note = f"{est.n_epochs_} epochs ({st['stopped']}), noise_scale_ {est.noise_scale_:.3g}, wait {100 * st['data_wait_share']:.1f}%"
            score(f"{method} {head}", est.sample(Xt, 64, random_state=0), est.predict(Xt), fit_s, note)
    try:
        from wavinv.methods import build_method
        from wavinv.inverter import store_inputs
    except ImportError:
        print("pca-lgbm: wavinv.methods not available")
        return
    est = build_method("pca-lgbm", progress=False)
    t0 = time.perf_counter()
    est.fit(store_inputs(store, "train", "spectrogram"), y)
    fit_s = time.perf_counter() - t0
    St = target_spec.astype(np.float32)
    score("pca-lgbm (spectrogram)", est.sample(St, 64, random_state=0), est.predict(St), fit_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="auto, cpu, cuda, ...")
    ap.add_argument("--sizes", default="2000,8000", help="store sizes (clips), comma-separated")
    ap.add_argument("--seconds", type=float, default=60.0, help="training time per run")
    ap.add_argument("--methods", default="conv1d,spec-cnn")
    ap.add_argument("--heads", default="flow,latent-noise")
    ap.add_argument("--data", default="data/bench-neural", help="where the stores are cached")
    ap.add_argument("--generator", default="synth100")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--quality", action="store_true", help="score fitted models on test targets instead of timing")
    ap.add_argument("--targets", type=int, default=40, help="--quality: test targets")
    ap.add_argument("--draws", type=int, default=16, help="--quality: re-rendered candidates per target")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--head", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from wavinv.generate import generate

    print(machine())
    print(f"command: {' '.join(sys.argv)}")
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = {}
    for n in sizes:
        path = Path(args.data) / f"{args.generator}-{n}"
        t0 = time.perf_counter()
        generate(path, args.generator, n, seed=0, workers=1, progress=False)
        stores[n] = path
        print(f"store {path}: {n} clips ready in {time.perf_counter() - t0:.1f} s")
    print()
    if args.quality:
        for n in sizes:
            quality(args, stores[n])
        return
    header = f"{'method':9} {'head':13} {'store':>6} {'steps':>5} {'step s':>7} {'wait %':>6} {'epoch@20k s':>11} {'calib s':>7} {'peak MB':>8} {'fit +MB':>7}"
    print(header)
    print("-" * len(header))
    for method in args.methods.split(","):
        for head in args.heads.split(","):
            for n in sizes:
                cmd = [sys.executable, __file__, "--child", "--store", str(stores[n]), "--method", method, "--head", head, "--seconds", str(args.seconds), "--device", args.device]
                cmd += ["--threads", str(args.threads)] if args.threads else []
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode:
                    print(f"{method:9} {head:13} {n:6d} failed: {res.stderr.strip().splitlines()[-1]}")
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                print(
                    f"{method:9} {head:13} {n:6d} {r['steps']:5d} {r['step_s']:7.3f} {100 * r['wait']:6.1f} {r['epoch_20k_s']:11.0f} "
                    f"{r['calibrate_s']:7.1f} {r['rss_peak_mb']:8.0f} {r['rss_peak_mb'] - r['rss_before_mb']:7.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
