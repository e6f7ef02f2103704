"""Paired differences between rows of a finished ``wavinv bench`` run.

    python benchmarks/paired.py data/bench-refine-20k knn+refine-spectrogram random-search-spectrogram cma-search-spectrogram

prints, for the first row against each other row, the mean per-target difference
of lsd_db best-of-K and median-of-K with a 95% bootstrap interval (the same
resamples as the run's tables), and how many targets the first row wins. Rows
are named as their files in ``OUT/evals`` (``LABEL-INPUT``; ``floor`` for the
same-sound floor).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wavinv.bench import N_BOOT, boot_indices, bootstrap_ci

from refusal import refuse


def _finished_run(out: Path) -> dict:
    """The run's ``results.json``; refuses a folder that holds no finished run."""
    try:
        results = json.loads((out / "results.json").read_text())
        return {"ids": [str(i) for i in results["meta"]["target_ids"]], "seed": int(results["meta"]["settings"]["seed"])}
    except FileNotFoundError:
        refuse(f"{out} holds no finished bench run (no results.json): finish it, or name the run's --out folder")
    except (OSError, ValueError, KeyError, TypeError) as e:
        refuse(f"{out / 'results.json'} cannot be read as a bench run's results: {type(e).__name__}: {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the bench's output folder")
    ap.add_argument("row", help="the row to compare (e.g. knn+refine-spectrogram)")
    ap.add_argument("others", nargs="+", help="rows to compare it with")
    args = ap.parse_args()
    run = _finished_run(args.out)
    ids, seed = run["ids"], run["seed"]

    def records(name: str) -> list[dict]:
        path = args.out / "evals" / f"{name}.json"
        if not path.is_file():
            refuse(f"no such row: {path}")
        try:
            targets = json.loads(path.read_text())["targets"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            refuse(f"{path} cannot be read as a row's results: {type(e).__name__}: {e}")
        missing = [i for i in ids if i not in targets]
        if missing:
            refuse(f"{path}: {len(missing)} of the run's targets have no result")
        return [targets[i] for i in ids]

    idx = boot_indices(len(ids), N_BOOT, seed)
    mine = records(args.row)
    print(f"{args.row} minus each row, mean over {len(ids)} targets [95% paired bootstrap interval]; negative = {args.row} closer")
    for other in args.others:
        theirs = records(other)
        cells = []
        for key in ("lsd_db_best", "lsd_db_median"):
            d = np.array([a[key] - b[key] for a, b in zip(mine, theirs)])
            mean, lo, hi = bootstrap_ci(d, indices=idx)
            cells.append(f"{key} {mean:+.2f} [{lo:+.2f}, {hi:+.2f}] dB (wins {int((d < 0).sum())}/{len(d)})")
        print(f"  vs {other}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
