"""The results table: its per-target metrics, its columns, and one row per (method, input) from the evaluations.

Each row holds every metric's mean over the targets with its bootstrap
interval, the paired difference to the best row, the gap closed between chance
and the floor, how many targets it scores below the floor on, and the costs.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from .settings import Settings
from .stats import N_BOOT, boot_indices, bootstrap_ci, gap_closed

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

# Per-target metrics, in table order: key -> (Markdown header, decimals, better).
# better: "low", "high" or a target value (coverage@80 is best at 0.80).
METRICS: dict[str, tuple[str, int, Any]] = {
    "lsd_db_best": ("lsd_db best-of-K (dB)", 2, "low"),
    "lsd_db_median": ("lsd_db median-of-K (dB)", 2, "low"),
    "mrstft_best": ("mrstft best-of-K", 3, "low"),
    "param_mae_best": ("param_mae best", 3, "low"),
    "param_mae_mean": ("param_mae mean", 3, "low"),
    "diversity": ("diversity", 3, None),
    "spread": ("spread of K", 3, None),
    "coverage80": ("coverage@80", 3, 0.8),
}

# rows that learn nothing from the store: their input is "any"
NOT_LEARNT = ("prior", "random-search", "cma-search", "floor")

# Inversion.costs(): milliseconds per clip rendered, per picture a search scored, per picture ranked exactly
COST_KEYS = ("render_ms", "score_ms", "exact_ms")

CSV_COLUMNS = (
    ["method", "input", "n_targets"]
    + [c for key in METRICS for c in (key, f"{key}_lo", f"{key}_hi")]
    + ["d_lsd_db_best", "d_lsd_db_best_lo", "d_lsd_db_best_hi", "gap_closed", "gap_closed_lo", "gap_closed_hi", "below_floor"]
    + ["fit_s", "invert_s", "model_mb", "unique_draws", "renders"]
    + list(COST_KEYS)
)


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A CSV of ``columns`` of every row (``results.csv``, ``anytime.csv``): floats to 6 significant digits,
    empty where a row has no value."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: (f"{r[c]:.6g}" if isinstance(r[c], float) else "" if r[c] is None else r[c]) for c in columns})
    return buf.getvalue()


def chance_and_floor(evals: dict, pairs: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per target, the scale of gap closed: the prior's best-of-K lsd_db (chance; its row is always first)
    and the floor's (its row is always last)."""
    best = {pair: np.array([r["lsd_db_best"] for r in evals[pair]["records"]]) for pair in pairs}
    return best[pairs[0]], best[pairs[-1]]


def table_rows(evals: dict, pairs: list[tuple[str, str]], s: Settings) -> list[dict[str, Any]]:
    """One row per pair: mean and bootstrap interval of each metric, cost columns."""
    n = len(next(iter(evals.values()))["records"])
    idx = boot_indices(n, N_BOOT, s.seed)
    table: list[dict[str, Any]] = []
    per_target: list[np.ndarray] = []
    for method, input in pairs:
        ev = evals[(method, input)]
        recs = ev["records"]
        row: dict[str, Any] = {"method": method, "input": "any" if method in NOT_LEARNT else input, "n_targets": n}
        for key in METRICS:
            if all(key in r for r in recs):
                row[key], row[f"{key}_lo"], row[f"{key}_hi"] = bootstrap_ci([r[key] for r in recs], indices=idx)
            else:  # the floor has one "candidate" and no samples
                row[key] = row[f"{key}_lo"] = row[f"{key}_hi"] = None
        per_target.append(np.array([r["lsd_db_best"] for r in recs]))
        row["fit_s"] = round(ev["model"]["fit_s"], 3)
        row["invert_s"] = float(np.mean([r["invert_s"] for r in recs]))
        row["model_mb"] = ev["model"]["model_mb"]
        row["unique_draws"] = float(np.mean([r["n_unique"] for r in recs]))
        row["renders"] = float(np.mean([r.get("n_renders", r["n_unique"]) for r in recs]))
        for key in COST_KEYS:  # evals recorded before costs were, and rows that never did the thing, have none
            measured = [r[key] for r in recs if r.get(key) is not None]
            row[key] = float(np.mean(measured)) if measured else None
        table.append(row)
    methods = [i for i, (m, _) in enumerate(pairs) if m != "floor"]
    best = methods[int(np.argmin([table[i]["lsd_db_best"] for i in methods]))]
    chance, floor = chance_and_floor(evals, pairs)

    for row, values in zip(table, per_target):
        # paired: the same targets and the same resamples for both rows
        row["d_lsd_db_best"], row["d_lsd_db_best_lo"], row["d_lsd_db_best_hi"] = bootstrap_ci(values - per_target[best], indices=idx)
        row["gap_closed"], row["gap_closed_lo"], row["gap_closed_hi"] = gap_closed(chance, floor, values, idx)
        # targets where the row beats the same sound: there its own gap closed exceeds 1, and the table says so
        row["below_floor"] = int(np.sum(values < floor))
    return table
