"""How long the training step waits on clips rendered while training.

    python benchmarks/clip_wait.py --store STORE [--generator SPEC] [--seconds 120]
                                   [--render-workers W] [--render-clips N] [--method conv1d]
                                   [--input waveform|spectrogram]

Fits ``--method`` (default ``conv1d``, its recipe's hyper-parameters) on the
train split's waveforms (or, ``--input spectrogram``, their pictures) of
``STORE``, a store made with ``--no-waveforms``: every clip is rendered by the
generator in ``--render-workers`` processes (default: half the CPUs) ahead of
the optimizer (``wavinv.clips``), for ``--seconds`` of
training (``max_time``; no early stop), then its calibration (no validation:
``wavinv fit`` would add it). Prints the clips the optimizer trained on per
second (steps x batch size over the training time), the clips rendered per
second of the fit, and the share of the training steps' time spent waiting on
clips (the goal: under 10%; with ``--input spectrogram`` the wait includes
making their pictures, in the training process as ``wavinv fit`` does).
``--render-clips N`` trains on N clips, more than the store holds, as ``wavinv
fit --render-clips`` does.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

from refusal import refuse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="a store made with --no-waveforms")
    ap.add_argument("--generator", default=None, help="its generator (needed unless built in)")
    ap.add_argument("--seconds", type=float, default=120.0, help="training time (default 120)")
    ap.add_argument("--render-workers", type=int, default=None, help="render processes (default: half the CPUs)")
    ap.add_argument("--render-clips", type=int, default=None, help="train on N clips, the store's and those past its end")
    ap.add_argument("--method", default="conv1d", help="a neural method (default conv1d)")
    ap.add_argument("--input", default="waveform", choices=("waveform", "spectrogram"), help="what the method reads (default waveform)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args()
    if not 0 < args.seconds < math.inf:
        refuse(f"--seconds must be a number of seconds > 0, got {args.seconds}")

    from wavinv.errors import WavinvError

    try:
        measure(args)
    except WavinvError as e:
        refuse(str(e))


def measure(args) -> None:
    import torch

    from wavinv import open_store
    from wavinv.clips import clip_count, clip_renderer, sequence_params_unit
    from wavinv.inverter import store_inputs
    from wavinv.methods import build_method
    from wavinv.models.neural import NeuralInverter
    from wavinv.pictures import store_picture

    est = build_method(args.method)
    if not isinstance(est, NeuralInverter):
        refuse(f"--method {args.method} is not a neural method: only those measure their wait on data")
    est.set_params(max_time=args.seconds, max_epochs=10_000, patience=10_000, progress=not args.quiet)
    store = open_store(args.store)
    n_clips = store.n if args.render_clips is None else clip_count(store, args.render_clips)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"store: {store.location} ({store.n} clips, {'waveforms kept' if store.keeps_waveforms else 'no waveforms'}), generator {store.generator['name']}")
    with clip_renderer(store, args.generator, args.render_workers, progress=not args.quiet) as renderer:
        clips = renderer.split(n_clips, "train")
        picture = store_picture(store, args.generator) if args.input == "spectrogram" else None
        X = store_inputs(store, "train", args.input, picture, clips)
        t0 = time.perf_counter()
        est.fit(X, sequence_params_unit(store, clips.ids))
        fit_s = time.perf_counter() - t0
    stats = est.fit_stats_
    trained = stats["steps"] * est.batch_size
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"render workers: {renderer.workers}; train split: {len(X)} clips ({args.input}s)")
    print(f"training: {stats['train_s']:.1f} s, {stats['steps']} steps of {est.batch_size} clips: {trained / stats['train_s']:.1f} clips/s")
    print(f"rendered: {renderer.rendered} clips in the fit's {fit_s:.1f} s (training and calibration): {renderer.rendered / fit_s:.1f} clips/s")
    print(f"waited on clips: {100 * stats['data_wait_share']:.1f}% of the training steps' time")


if __name__ == "__main__":
    main()
