"""How close the store's nearest clip comes to each target: the ceiling of answers looked up in the store.

    python benchmarks/store_coverage.py --bench OUT [--generator SPEC] [--sizes 1000,4000,16000,64000]
                                        [--targets N] [--render-workers W] [-q]

``OUT`` is a finished bench run (``benchmarks/run.py --out OUT``): its store, its
targets (the first ``--targets`` of them, default all) and its scale (the chance
and floor rows of ``OUT/results.json``) are reused. The train split's clips are
rendered in id order (ids are independent draws, so the first n are a random
store of n) and pictured as the bench pictures them; for each target the script
keeps the smallest whole-picture lsd_db any of them reaches. For each size n in
``--sizes`` it prints the mean over targets of that nearest clip's lsd_db, the
gap it closes on the run's scale, and the gap each of the run's rows closes, so
the table reads: an answer taken from the store (knn, or any method that returns
training examples) cannot beat the nearest clip; a method above that line has
generalised between the examples.

The nearest clip is scored with the store's own noise; a method's candidate is
rendered again by the inverter, so on a generator whose floor is "another seed"
the ceiling is slightly optimistic.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from refusal import refuse


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
        refuse(f"--sizes must be increasing positive counts, got {text!r}")
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True, help="a finished bench run's --out directory")
    ap.add_argument("--generator", default=None, help="the store's generator (needed unless built in)")
    ap.add_argument("--sizes", default="1000,4000,16000,64000", help="store sizes to report (train clips)")
    ap.add_argument("--targets", type=int, default=None, help="the first N of the run's targets (default all)")
    ap.add_argument("--render-workers", type=int, default=None, help="render processes (default: half the CPUs)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args()
    sizes = _sizes(args.sizes)
    try:
        run = json.loads((Path(args.bench) / "results.json").read_text())
        meta, rows = run["meta"], run["rows"]
        target_ids = np.asarray(meta["target_ids"], dtype=np.int64)
        store_path = meta["store"]["path"]
        by_name = {f"{r['method']}/{r['input']}": r for r in rows}
        chance, floor = by_name["prior/any"]["lsd_db_best"], by_name["floor/any"]["lsd_db_best"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        refuse(f"{args.bench} is not a finished bench run with a chance and a floor row ({type(e).__name__}: {e})")
    settings = meta.get("settings", {})
    if settings.get("targets_from", "test") != "test" or settings.get("target_noise_seed") is not None:
        refuse(f"{args.bench}: its targets are not the store's own test clips (--targets-from test, no --target-noise-seed)")
    if args.targets is not None:
        if args.targets < 1:
            refuse(f"--targets must be at least 1, got {args.targets}")
        target_ids = target_ids[: args.targets]

    import torch
    from tqdm.auto import tqdm

    from wavinv import open_store
    from wavinv.clips import clip_renderer
    from wavinv.errors import WavinvError
    from wavinv.frontend import spectrogram
    from wavinv.lazy import iter_batches
    from wavinv.pictures import store_picture

    try:
        store = open_store(store_path)
        train = store.split_indices("train")
        if sizes[-1] > len(train):
            refuse(f"{store_path} has {len(train)} train clips, fewer than --sizes' {sizes[-1]}")
        renderer = clip_renderer(store, args.generator, args.render_workers, progress=False)
        picture = store_picture(store, args.generator)
    except WavinvError as e:
        refuse(str(e))

    t0 = time.perf_counter()
    with renderer:
        targets = torch.from_numpy(spectrogram(np.asarray(renderer.clips(target_ids)[:]), picture))
        t_frames = targets.double().permute(2, 0, 1)  # (T, targets, F)
        t_sq = t_frames.square().sum(-1)
        nearest = np.full(len(target_ids), np.inf)
        best_at: dict[int, np.ndarray] = {}
        bar = tqdm(total=sizes[-1], desc="nearest clip", unit="clip", disable=args.quiet)
        for start, n in zip([0] + sizes[:-1], sizes):
            for _, waves in iter_batches(renderer.clips(train[start:n]), 256):
                pics = torch.from_numpy(spectrogram(waves, picture)).double().permute(2, 0, 1)  # (T, B, F)
                # per frame, every clip against every target at once: |a - b|^2 = |a|^2 + |b|^2 - 2 a.b
                sq = (pics.square().sum(-1)[:, :, None] + t_sq[:, None, :] - 2 * pics @ t_frames.transpose(1, 2)).clamp_min(0)
                lsd = (sq / pics.shape[-1]).sqrt().mean(0)  # (B, targets): lsd_db
                nearest = np.minimum(nearest, lsd.min(0).values.numpy())
                bar.update(len(waves))
            best_at[n] = nearest.copy()
        bar.close()
    wall = time.perf_counter() - t0

    print(f"store {store_path} ({meta['store']['generator']}), {len(target_ids)} of the run's targets, "
          f"{sizes[-1]} train clips rendered and pictured in {wall:.0f} s; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"scale of {args.bench} (over all its {len(meta['target_ids'])} targets): chance {chance:.2f} dB, "
          f"floor {floor:.2f} dB ({meta['floor']['kind']})")
    print()
    print("| train clips | nearest clip's lsd_db (dB) | gap closed |")
    print("|---:|---:|---:|")
    for n in sizes:
        v = float(best_at[n].mean())
        print(f"| {n:,} | {v:.2f} | {(chance - v) / (chance - floor):.2f} |")
    n_targets = {r["n_targets"] for r in rows}
    print()
    print(f"the run's rows ({meta['store']['n_train']:,} train clips, {sorted(n_targets)} targets; "
          "compare on the same targets only):")
    for name, r in by_name.items():
        if r.get("gap_closed") is not None:
            print(f"  {name}: {r['lsd_db_best']:.2f} dB, gap closed {r['gap_closed']:.2f}")


if __name__ == "__main__":
    main()
