"""The anytime table: for each row with a search, the gap closed against renders per target.

Every inversion with a search (the ``+refine`` rows, cma-search, random-search)
records, per target, the best lsd_db it had reached after each budget of
renders (``Inverter.invert``'s ``budgets``), and its total. Here those values
become one cell per (row, budget): the gap closed on the main table's scale
(the prior's best-of-K and the floor), with the main table's bootstrap
resamples, and the paired difference to cma-search at the same budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .settings import Settings
from .stats import LEVEL, N_BOOT, boot_indices, bootstrap_ci, gap_closed
from .table import NOT_LEARNT, chance_and_floor

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

# the search that learns nothing: every other row of the table is compared with it at each budget
REFERENCE = "cma-search"

COLUMNS = ["method", "input", "budget", "n_targets"] + [
    c for key in ("lsd_db", "gap_closed", "d_gap_closed") for c in (key, f"{key}_lo", f"{key}_hi")
]


def value_at(record: dict[str, Any], budget: int) -> float | None:
    """A target's best lsd_db after ``budget`` renders: recorded at that budget, or its last value from its
    total renders on (it spends no more); None where its record has no curve or another set of budgets."""
    curve = record.get("anytime")
    if not curve:
        return None
    for b, v in curve:
        if b == budget:
            return float(v)
    total, last = curve[-1]
    return float(last) if budget >= total else None


def anytime_rows(evals: dict, pairs: list[tuple[str, str]], s: Settings, searching: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[str]]:
    """``(cells, missing)``: one cell per (row with a search, budget), ``searching`` in table order then
    budget order, each with lsd_db, gap closed and its difference to cma-search (mean and interval, None
    where some target has no value there); and the rows with a search without a curve for some target."""
    if not s.budgets:
        return [], []
    chance, floor = chance_and_floor(evals, pairs)
    idx = boot_indices(len(chance), N_BOOT, s.seed)  # the main table's resamples: paired with it too

    def values(pair, budget) -> np.ndarray | None:
        vals = [value_at(r, budget) for r in evals[pair]["records"]]
        return None if any(v is None for v in vals) else np.array(vals)

    shown = [p for p in searching if any(values(p, b) is not None for b in s.budgets)]
    missing = [f"{m} / {i}" for m, i in searching if (m, i) not in shown or any(values((m, i), b) is None for b in s.budgets)]
    reference = next((p for p in shown if p[0] == REFERENCE), None)
    cells = []
    for pair in shown:
        for budget in s.budgets:
            cell: dict[str, Any] = {"method": pair[0], "input": "any" if pair[0] in NOT_LEARNT else pair[1], "budget": budget, "n_targets": len(chance)}
            cell.update({c: None for c in COLUMNS[4:]})
            vals = values(pair, budget)
            ref = None if reference is None else values(reference, budget)
            if vals is not None:
                cell["lsd_db"], cell["lsd_db_lo"], cell["lsd_db_hi"] = bootstrap_ci(vals, indices=idx)
                cell["gap_closed"], cell["gap_closed_lo"], cell["gap_closed_hi"] = gap_closed(chance, floor, vals, idx)
                if ref is not None and pair != reference:
                    cell["d_gap_closed"], cell["d_gap_closed_lo"], cell["d_gap_closed_hi"] = gap_closed(chance, floor, vals, idx, start=ref)
            cells.append(cell)
    return cells, missing


def anytime_markdown(cells: list[dict[str, Any]], missing: list[str], s: Settings, figure: str | None) -> list[str]:
    """The results page's section: how the curve is made, then the gap closed of each row at each budget and
    each row's difference to cma-search."""
    lines = ["## Anytime: gap closed against renders per target", ""]
    if not cells:
        return lines + ["No row with a search recorded its best lsd_db at these budgets" + (f" ({', '.join(missing)})" if missing else "") + ".", ""]
    lines += [
        "The best lsd_db reached after each number of renders per target, in the order they were rendered: "
        "the draws first, in the order the method gives them, then its learnt rounds, then the search's evaluations, as one search spends them. "
        "A column below the draws is the best of the first draws: what a run with that many draws would render, since the draws "
        "are independent (the prior, the sampling methods) or come best first (knn's weighted picks without repeats, the proxy's "
        "closest points); a column inside the search is a moment of one search, not a shorter search "
        "(that one would split its budget otherwise). The search ranks on every 8th frame, so at each budget its best point "
        "by that score is also ranked on the whole picture (one more render each, in the total): every value is the same "
        "full-picture lsd_db as the main table's best-of-K, whose value the curve ends at. A point counts from its first render; "
        "the re-renders of the exact ranking count only in the total. From its total renders on, a row keeps its last value. "
        f"Gap closed uses the main table's chance and floor; in brackets its {int(100 * LEVEL)}% paired bootstrap interval. "
        f"The rows '− {REFERENCE}' give each row's gap closed minus {REFERENCE}'s at the same budget, on the same targets "
        "(an interval clear of 0: a difference the targets show).",
        "",
    ]
    budgets = s.budgets
    lines.append("| method | input | " + " | ".join(f"{b:,}" for b in budgets) + " |")
    lines.append("|---|---|" + "---:|" * len(budgets))
    by_row: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for c in cells:
        by_row.setdefault((c["method"], c["input"]), {})[c["budget"]] = c

    def fmt(c: dict[str, Any], key: str, sign: str = "") -> str:
        if c[key] is None or not np.isfinite(c[key]):
            return "-"
        return f"{c[key]:{sign}.2f} [{c[f'{key}_lo']:{sign}.2f}, {c[f'{key}_hi']:{sign}.2f}]"

    for (method, input), row in by_row.items():
        lines.append(f"| {method} | {input} | " + " | ".join(fmt(row[b], "gap_closed") for b in budgets) + " |")
    for (method, input), row in by_row.items():
        if method != REFERENCE and any(row[b]["d_gap_closed"] is not None for b in budgets):
            lines.append(f"| {method} − {REFERENCE} | {input} | " + " | ".join(fmt(row[b], "d_gap_closed", "+") for b in budgets) + " |")
    lines.append("")
    if missing:
        lines += [f"Rows with a target whose curve is missing at some budget (evaluated by an earlier wavinv or with other budgets; "
                  f"delete their evals/ files to record it): {', '.join(missing)}.", ""]
    if figure:
        lines += [f"![anytime: gap closed against renders per target]({figure})", ""]
    return lines
