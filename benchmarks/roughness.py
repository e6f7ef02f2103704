"""How rough a generator's distance is at small scales: lsd_db from the true parameters moved by a step.

A search and a learnt proxy both take nearby parameters to sound nearby. For
each step size on the unit scale, every parameter of each target's true
parameters moves by +step or -step (random signs, seeded; inward at a bound),
and the render is scored against the true parameters' own render on the
store's picture, as a candidate is. With a generator that takes a noise seed,
the true parameters rendered with another seed are scored too: "the same patch,
other noise". A median far above 0 at a step no sound could resolve means the
distance itself is rough there, and no search or proxy can follow it. Example
(the figures in benchmarks/README.md)::

    python benchmarks/roughness.py --store data/torchsynth-100k --generator examples/torchsynth_voice.py:voice --targets 16
"""

from __future__ import annotations

import argparse

import numpy as np

from refusal import refuse

DEFAULT_STEPS = "1e-6,1e-4,1e-3,1e-2,1e-1"
# targets rendered and pictured at a time: memory stays flat however many targets are asked for
BATCH = 16


def _steps(text: str) -> list[float]:
    try:
        steps = [float(x) for x in text.split(",")]
    except ValueError:
        refuse(f"--steps {text!r} is not a comma-separated list of numbers")
    if any(not 0.0 < s <= 0.5 for s in steps):
        refuse(f"--steps must be in (0, 0.5], got {text}")
    return steps


def moved(unit: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    """``unit`` (n, P) with every parameter moved by ``step`` in a random direction, turned inward where it would leave [0, 1]."""
    up = unit + step * rng.choice([-1.0, 1.0], unit.shape)
    return np.where((up < 0.0) | (up > 1.0), 2 * unit - up, up)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True, help="a store: its first test clips' parameters are the targets")
    ap.add_argument("--generator", default=None, help="the store's generator (needed unless built in)")
    ap.add_argument("--targets", type=int, default=16, help="the first N clips of the test split")
    ap.add_argument("--steps", default=DEFAULT_STEPS, help=f"unit-scale steps, comma-separated (default {DEFAULT_STEPS})")
    ap.add_argument("--seed", type=int, default=0, help="seeds the directions")
    args = ap.parse_args()
    steps = _steps(args.steps)
    if args.targets < 1:
        refuse(f"--targets must be at least 1, got {args.targets}")
    if args.seed < 0:
        refuse(f"--seed must be 0 or more, got {args.seed}")

    from wavinv import open_store
    from wavinv.errors import WavinvError
    from wavinv.floor import other_seed
    from wavinv.frontend import spectrogram
    from wavinv.generators import render_checked, takes_seed
    from wavinv.metrics import lsd_db
    from wavinv.pictures import store_picture

    try:
        store = open_store(args.store)
        gen = store.attach(args.generator)
        picture = store_picture(store, args.generator)
        params = np.asarray(store.params("test")[: args.targets], dtype=np.float64)
        if not len(params):
            refuse(f"{args.store} has no test clips")
        rng = np.random.default_rng(args.seed)
        names = [f"step {step:g}" for step in steps] + (["another seed"] if takes_seed(gen) else [])
        lsds: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for lo in range(0, len(params), BATCH):
            batch = params[lo : lo + BATCH]
            own = spectrogram(render_checked(gen, batch), picture)
            unit = gen.space.to_unit(batch)
            renders = [render_checked(gen, gen.space.from_unit(moved(unit, step, rng))) for step in steps]
            if takes_seed(gen):
                renders.append(render_checked(gen, batch, seed=other_seed(None)))
            for name, waves in zip(names, renders):
                lsds[name].append(lsd_db(own, spectrogram(waves, picture)))
    except WavinvError as e:
        refuse(str(e))
    print(f"{store.generator.get('name', '?')}: {len(params)} targets, lsd_db (dB) from the true parameters' own render")
    print(f"{'move':>14s} {'median':>8s} {'q25':>8s} {'q75':>8s} {'mean':>8s}")
    for name, parts in lsds.items():
        lsd = np.concatenate(parts)
        q25, median, q75 = np.percentile(lsd, [25, 50, 75])
        print(f"{name:>14s} {median:8.2f} {q25:8.2f} {q75:8.2f} {float(np.mean(lsd)):8.2f}")


if __name__ == "__main__":
    main()
