"""The proxy's held-out error against the number of rows it trains on: is it short of data?

    python benchmarks/proxy_rows.py --model MODEL --rows 19000 38000 77925 [--held-out 2000] [--epochs E]

``MODEL`` is a fitted ``proxy``; its file holds every training row's parameters
and features. The same ``--held-out`` rows (drawn with seed 0) are set aside,
and for each count in ``--rows`` a fresh net of the model's recipe (width,
depth, Fourier features, rate, batch) trains on the first that many of the
others for the recipe's epochs (``--epochs`` to change them) and prints its
held-out feature error (the mean distance, in the proxy's unit-std features,
between predicted and real features; ``proxy_error_`` measures the same) and
its training time. An error that keeps falling as the rows double says a larger
store (``wavinv generate --n``) will make a closer proxy; one that has stopped
says the net, not the data, limits it.
"""

from __future__ import annotations

import argparse

import numpy as np

from wavinv import load
from wavinv.device import torch_threads
from wavinv.errors import WavinvError
from wavinv.models.base import n_threads
from wavinv.models.proxy import ProxySearch

from refusal import refuse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a fitted proxy (wavinv fit --method proxy)")
    p.add_argument("--rows", type=int, nargs="+", required=True, help="training rows per net, increasing")
    p.add_argument("--held-out", type=int, default=2000, help="rows set aside to measure every net on")
    p.add_argument("--epochs", type=int, default=None, help="epochs per net (default: the model's max_epochs)")
    args = p.parse_args()
    try:
        est = load(args.model).estimator
    except WavinvError as e:
        refuse(str(e))
    if not isinstance(est, ProxySearch):
        refuse(f"{args.model} holds a {type(est).__name__}, not a proxy")
    z = est.index_._fit_X.astype(np.float32)  # the training rows' features, as the proxy learnt them
    y = est.y_train_.astype(np.float32)
    if args.held_out < 1 or args.held_out >= len(y):
        refuse(f"--held-out must be 1 to {len(y) - 1} rows (the model has {len(y)}), got {args.held_out}")
    available = len(y) - args.held_out
    if any(r < 1 for r in args.rows) or args.rows != sorted(set(args.rows)) or args.rows[-1] > available:
        refuse(f"--rows must increase, each from 1 to {available} (the model's {len(y)} rows less the held-out), got {args.rows}")
    if args.epochs is not None and args.epochs < 1:
        refuse(f"--epochs must be at least 1, got {args.epochs}")
    order = np.random.default_rng(0).permutation(len(y))
    held_out, pool = order[: args.held_out], order[args.held_out :]
    est.set_params(progress=False, **({} if args.epochs is None else {"max_epochs": args.epochs}))
    print(f"{type(est).__name__} {est.hidden} wide, {est.depth} blocks, {est.max_epochs} epochs; "
          f"held-out feature error on {args.held_out} rows (features have unit std)")
    with torch_threads(n_threads(est.n_threads)):
        for rows in args.rows:
            _, error, stats = est._train(y, z, pool[:rows], held_out, np.random.default_rng(1), 1)
            print(f"rows {rows:>9d}  held-out error {error:.3f}  fit {stats['fit_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
