"""Which parameters are learnt: per parameter, each method's error beside the sound's sensitivity to it.

Read from the fitted models' validation (``inverter.learnt_parameters`` and
``wavinv.sensitivity``, kept in each model's sidecar): for every method that
learns (not the prior) whose fit measured the sensitivity, one row per
parameter, the most sensitive first.
"""

from __future__ import annotations

from typing import Any

from ..sensitivity import most_sensitive_first

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

COLUMNS = ["method", "input", "parameter", "sensitivity_db", "posterior", "prior", "ratio"]
# parameters shown at each end of a method's table in results.md (all of them when there are at most twice as many)
SHOWN = 5


def learnt_rows(pairs: list[tuple[str, str]], evals: dict[tuple[str, str], dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(learnt.csv's rows, how the sensitivity was measured)``: each learnt model once (its ``+refine`` and
    sampler rows share it), in table order; ``how`` is the first model's ``validation["sensitivity"]``."""
    rows: list[dict[str, Any]] = []
    how: dict[str, Any] = {}
    seen = set()
    for pair in pairs:
        model = evals[pair]["model"]
        method = (model.get("key") or {}).get("method")
        validation = model.get("validation") or {}
        learnt = validation.get("learnt") or {}
        measured = any(isinstance(r, dict) and r.get("sensitivity_db") is not None for r in learnt.values())
        if method in (None, "prior") or not measured or (method, pair[1]) in seen:
            continue
        seen.add((method, pair[1]))
        how = how or validation.get("sensitivity") or {}
        rows += [{"method": method, "input": pair[1], "parameter": name, **{c: r.get(c) for c in COLUMNS[3:]}} for name, r in most_sensitive_first(learnt)]
    return rows, how


def learnt_markdown(rows: list[dict[str, Any]], how: dict[str, Any], csv_name: str) -> list[str]:
    """The results page's section: what the columns mean, then per method its most and least sensitive parameters.
    ``how`` is a model's ``validation["sensitivity"]`` (its rows and frames)."""
    lines = [
        "## Which parameters are learnt",
        "",
        "Per parameter, for each method that learns: **sensitivity**, how far the sound moves when that parameter alone is "
        f"redrawn from the prior (lsd_db, dB; median over {how.get('rows', '?')} validation clips, scored on {how.get('frames', '?')}); "
        "**posterior**, the mean distance of a draw from the true value on the 0-1 scale, over the validation clips; "
        "**prior**, that of a random draw; **ratio**, posterior over prior (1: nothing learnt). "
        "A parameter of low sensitivity is one the sound can hardly tell apart, whatever the method; a sensitive one "
        f"with a ratio near 1 is one the method did not learn. The most and least sensitive {SHOWN} are shown; "
        f"every parameter: [{csv_name}]({csv_name}).",
        "",
    ]
    methods = list(dict.fromkeys((r["method"], r["input"]) for r in rows))
    for method, input in methods:
        mine = [r for r in rows if (r["method"], r["input"]) == (method, input)]
        shown = mine if len(mine) <= 2 * SHOWN else mine[:SHOWN] + [None] + mine[-SHOWN:]
        lines += [f"### {method} / {input}", "", "| parameter | sensitivity (dB) | posterior | prior | ratio |", "|---|---:|---:|---:|---:|"]
        for r in shown:
            if r is None:
                lines.append(f"| ... {len(mine) - 2 * SHOWN} more | | | | |")
                continue
            cells = [_fmt(r["sensitivity_db"], 2), _fmt(r["posterior"], 3), _fmt(r["prior"], 3), _fmt(r["ratio"], 2)]
            lines.append(f"| {r['parameter']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _fmt(x: Any, decimals: int) -> str:
    return "-" if x is None else f"{x:.{decimals}f}"
