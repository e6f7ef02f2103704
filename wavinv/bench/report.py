"""What a finished bench writes for people: ``results.md``, ``results.csv``, ``results.json`` and the figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..floor import DESCRIPTION as FLOOR_DESCRIPTION, floor_sentence
from ..outputs import atomic_paths
from ..store import Store
from .anytime import COLUMNS as ANYTIME_COLUMNS, anytime_markdown
from .cache import gallery_path, json_text
from .learnt import COLUMNS as LEARNT_COLUMNS, learnt_markdown, learnt_rows
from .settings import Settings
from .stats import LEVEL
from .table import CSV_COLUMNS, METRICS, csv_text
from .targets import BenchTargets

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


def _best_index(rows: list[dict[str, Any]], key: str, better) -> int | None:
    """The best method's row for ``key`` (the floor is a reference, not a method)."""
    vals = np.array([np.nan if r["method"] == "floor" or r[key] is None else r[key] for r in rows], dtype=np.float64)
    if np.isnan(vals).all():
        return None
    if better == "low":
        return int(np.nanargmin(vals))
    if better == "high":
        return int(np.nanargmax(vals))
    if isinstance(better, float):
        return int(np.nanargmin(np.abs(vals - better)))
    return None


def _fmt(x: float, decimals: int) -> str:
    """Fixed decimals, without the "-0.000" that rounding error near zero would print."""
    return f"{round(x, decimals) + 0.0:.{decimals}f}"


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any], figures: dict[str, str], page: str | None = None, anytime: list[str] = (),
              learnt: list[str] = ()) -> str:
    """``results.md``: where the numbers come from, the table, what its columns mean, the anytime section,
    which parameters are learnt, then the figures."""
    se = meta["settings"]
    lines = _provenance_table(meta) + _results_table(rows, se) + _floor_lines(rows, meta) + _glossary(se["k"], bool(se.get("gradient")))
    if se["overrides"]:
        lines += ["Hyper-parameters changed from the methods' defaults: "
                  + "; ".join(f"{name} `{json.dumps(ov, sort_keys=True)}`" for name, ov in se["overrides"].items()) + ".", ""]
    lines += anytime
    lines += _cost_lines(rows)
    lines += learnt
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{title}]({fname})" for fname, title in figures.items()]
        lines.append("")
    if page:
        lines += [f"To listen: [{page}]({page}), each gallery target beside every row's best candidate, "
                  "with their spectrograms, lsd_db against chance and the floor, and their parameters.", ""]
    return "\n".join(lines)


def _provenance_table(meta: dict[str, Any]) -> list[str]:
    """The title and a two-column table of the command, date, machine, code, store and settings."""
    m, st, se = meta["machine"], meta["store"], meta["settings"]
    ram = f", {m['ram_gib']} GiB RAM" if m["ram_gib"] else ""
    return [
        f"# {meta['title']}",
        "",
        "| | |",
        "|---|---|",
        f"| command | `{meta['command']}` |",
        f"| date | {meta['date']}; fitting took {meta['fit_wall_s']:.0f} s and inverting {meta['invert_wall_s']:.0f} s in all |",
        f"| machine | {m['cpu']}, {m['cores']} cores{ram}; {m['platform']}; Python {m['python']}, torch {m['torch']}, device {m['device']} |",
        f"| wavinv | {m['wavinv']}" + (f" (git {m['git']})" if m["git"] else "") + " |",
        f"| store | `{st['path']}`: {st['generator']}, {st['n']} clips (train {st['n_train']}, test {st['n_test']}), seed {st['seed']}, fingerprint `{st['fingerprint']}` |",
        f"| picture | {st.get('picture', 'wavinv stft')} (lsd_db ranks and scores on it) |",
        f"| targets | {meta['targets']} |",
        f"| settings | profile {se['profile']}: {se['targets']} targets, best K={se['k']} of {se['draws']} draws, "
        f"{se['samples']} samples for diversity / coverage / mean, {se['bootstrap']['resamples']} bootstrap resamples, seed {se['seed']} |",
        "",
    ]


def _results_table(rows: list[dict[str, Any]], se: dict[str, Any]) -> list[str]:
    """The results section: how to read it, then one line per row, each column's best value in bold."""
    lines = [
        "## Results",
        "",
        f"Mean over the {se['targets']} targets, with its {int(LEVEL * 100)}% bootstrap interval in brackets. "
        "Lower is better except diversity (no better direction) and coverage@80 (best at 0.80). "
        "The best value of each column is in bold; the prior row (random parameters) is the chance level.",
        "",
    ]
    headers = ["method", "input"] + [METRICS[key][0] for key in METRICS]
    headers += ["Δ lsd_db best vs best row", "gap closed", "fit (s)", "invert (s/target)", "renders/target", "model (MB)"]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(headers) - 2)) + "|")
    best = {key: _best_index(rows, key, better) for key, (_, _, better) in METRICS.items()}
    for i, r in enumerate(rows):
        below = " †" if r["below_floor"] else ""
        cells = [r["method"] + {"prior": " (chance)", "floor": " (same sound)"}.get(r["method"], "") + below, r["input"]]
        for key, (_, dec, _) in METRICS.items():
            if r[key] is None:
                cells.append("-")
                continue
            v, lo, hi = (_fmt(r[c], dec) for c in (key, f"{key}_lo", f"{key}_hi"))
            cells.append(f"{f'**{v}**' if best[key] == i else v} [{lo}, {hi}]")
        cells.append(f"{r['d_lsd_db_best']:+.2f} [{r['d_lsd_db_best_lo']:+.2f}, {r['d_lsd_db_best_hi']:+.2f}]")
        cells.append(f"{r['gap_closed']:.2f} [{r['gap_closed_lo']:.2f}, {r['gap_closed_hi']:.2f}]")
        cells += [f"{r['fit_s']:.1f}", f"{r['invert_s']:.2f}", f"{r['renders']:.0f}", f"{r['model_mb']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cost_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The cost per clip of every row that inverted: rendering against the picture a search or shortlist scores on."""
    searched = [r for r in rows if r.get("render_ms") is not None and r.get("score_ms") is not None]
    if not searched:
        return []
    lines = [
        "## Cost per clip",
        "",
        "Milliseconds per clip, the mean over the targets: the generator's render, the picture a search scores a point on "
        "(every 8th frame and its distance, or the whole picture when the frontend has no such subset), and the full picture "
        "of a candidate ranked exactly. A search (and the shortlist of the draws) pays render + score for every point it tries; "
        "score / render above 1 means the picture, not the generator, sets its pace.",
        "",
        "| method | input | render (ms) | search's score (ms) | exact picture (ms) | score / render |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in searched:
        exact = "-" if r.get("exact_ms") is None else f"{r['exact_ms']:.2f}"
        lines.append(f"| {r['method']} | {r['input']} | {r['render_ms']:.2f} | {r['score_ms']:.2f} | {exact} | {r['score_ms'] / r['render_ms']:.2f} |")
    return lines + [""]


def _floor_lines(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """Which floor the table uses and why, then the rows that beat it on some targets (marked †)."""
    lines = ["", floor_sentence(meta["floor"])]
    below = [f"{r['method']}" + ("" if r["input"] == "any" else f" / {r['input']}") + f" {r['below_floor']} of {r['n_targets']}"
             for r in rows if r["below_floor"]]
    if below:
        lines += ["", "† Below the floor on some targets (best-of-K closer to the target than the floor; "
                  "there the row's own gap closed exceeds 1): " + ", ".join(below) + "."]
    return lines


def _glossary(k: int, gradient: bool = False) -> list[str]:
    """What each column and each row that learns nothing means, under the table."""
    lines = [
        "",
        "- **lsd_db**: log-spectral distance (dB) between the target's spectrogram and a re-rendered candidate's; "
        f"best-of-K is the closest of the K={k} kept candidates, median-of-K their median.",
        "- **mrstft**: multi-resolution STFT distance on the waveforms (independent of the frontend), best of the K.",
        "- **param_mae**: mean absolute error of unit-scaled parameters, for the best candidate (by lsd_db) "
        "and for the mean of the samples.",
        "- **diversity**: mean pairwise L1 distance between samples (unit scale; two uniform draws give 0.333); "
        "**spread of K**: the same distance between the K kept candidates (how different the answers are); "
        "**coverage@80**: share of true parameters inside the samples' central 80% interval.",
        "- **Δ lsd_db**: each row's best-of-K lsd_db minus the best row's, on the same targets (paired bootstrap); "
        "an interval that contains 0 means the two rows are not distinguishable on these targets.",
        "- **floor**: what the same sound scores: each target's true parameters re-rendered with another noise seed, "
        "or their own render where parameters next to them reproduce the target's noise (or the generator takes no seed); "
        "the sentence under the table says which and why. **gap closed**: (chance - row) / (chance - floor) on the means over "
        "the targets, chance being the prior's best-of-K lsd_db, with its paired bootstrap interval; "
        "0 is chance, 1 is as good as the same sound.",
        "- **random-search** and **cma-search** learn nothing: the best of draws + refine random patches, and the "
        "prior's draws refined by the same search as the `+refine` rows; both at the `+refine` rows' render budget.",
        "- **fit**: estimator training time on the train split; **invert**: draw, re-render and rank one target; "
        "**model**: the saved joblib file.",
        "",
    ]
    if gradient:
        lines[-1:-1] = ["- **+refine+gradient**: the `+refine` row's search, ending with gradient steps through the generator "
                        "(its differentiable render) from its best points; each step of each point counts as one render, out of the same budget."]
    return lines


def write_outputs(out: Path, rows, meta, evals, pairs, targets: BenchTargets, s: Settings, store: Store, anytime=((), ())) -> dict[str, Path]:
    """Tables and figures, all written or none (the per-row models and evals are kept either way).

    ``anytime`` is ``anytime_rows``' ``(cells, missing)``: with cells, ``anytime.png`` and ``anytime.csv`` too.
    Where the fitted models measured each parameter's sensitivity, ``learnt.csv`` and its section too.
    """
    from ..plots import bench_anytime, bench_bars, bench_scatter

    cells, missing = anytime
    gallery = [int(row) for row in targets.ids[: s.gallery]]
    figures = {"lsd_db.png": "lsd_db per method and input", "quality_vs_cost.png": "quality vs cost"}
    figures.update({f"gallery-{j + 1}.png": f"gallery: {targets.label(j)}" for j in range(len(gallery))})
    page = REPORT if gallery else None
    curve = ["anytime.png", "anytime.csv"] if cells else []
    learnt, how = learnt_rows(pairs, evals)
    names = [*figures, *curve, *(["learnt.csv"] if learnt else []), "results.md", "results.csv", "results.json", *([page] if page else [])]
    title = f"{meta['store']['generator']}, {meta['settings']['targets']} {'test' if targets.source == 'test' else 'prior-drawn'} targets, best {s.k} of {s.draws} draws"
    with atomic_paths(*(out / name for name in names)) as tmps:
        tmp = dict(zip(names, tmps))
        bench_bars(rows, tmp["lsd_db.png"], title=title)
        bench_scatter(rows, tmp["quality_vs_cost.png"], title=title)
        for j, row in enumerate(gallery):
            _gallery_figure(tmp[f"gallery-{j + 1}.png"], out, row, j, targets.label(j), pairs, evals, store, s.draws)
        if page:
            _gallery_page(tmp[page], out, targets, pairs, evals, store, s, meta)
        if cells:
            bench_anytime(cells, s.budgets, tmp["anytime.png"], title=f"{title}: gap closed against renders per target")
            tmp["anytime.csv"].write_text(csv_text(cells, ANYTIME_COLUMNS))
        tmp["results.csv"].write_text(csv_text(rows, CSV_COLUMNS))
        tmp["results.json"].write_text(json_text({"meta": meta, "rows": rows, "anytime": {"budgets": s.budgets, "rows": list(cells), "missing": list(missing)}}))
        section = anytime_markdown(list(cells), list(missing), s, "anytime.png" if cells else None) if s.budgets and (cells or missing) else []
        if learnt:
            tmp["learnt.csv"].write_text(csv_text(learnt, LEARNT_COLUMNS))
        learnt_section = learnt_markdown(learnt, how, "learnt.csv") if learnt else []
        tmp["results.md"].write_text(_markdown(rows, meta, figures, page, section, learnt_section))
    return {name: out / name for name in names}


# the page to listen to, beside results.md
REPORT = "report.html"


def _row_label(method: str, input: str) -> str:
    return method + ("" if method == "prior" else f" / {input}")


def _gallery_page(path: Path, out: Path, targets: BenchTargets, pairs, evals, store: Store, s: Settings, meta: dict[str, Any]) -> None:
    """``report.html``: each gallery target (its clip and true parameters) beside every row's best candidate,
    on the scale of that target's chance (the prior row) and floor."""
    from ..page import Clip, Page, Reference, Section, write_page

    gallery = [int(row) for row in targets.ids[: s.gallery]]
    sections = []
    for j, row in enumerate(gallery):
        cands, scale, notes, target = [], [], [], None
        for method, input in pairs:
            lsd = float(evals[(method, input)]["records"][j]["lsd_db_best"])
            if method == "floor":
                scale.append(Reference(f"floor: {FLOOR_DESCRIPTION[meta['floor']['kind']]}", lsd, "floor"))
                continue
            label = _row_label(method, input)
            with np.load(gallery_path(out, f"{method}-{input}", row)) as z:
                target = target if target is not None else z["target"].astype(np.float32)
                kept = {"wave", "params"} <= set(z.files)  # galleries saved by an earlier wavinv hold pictures only
                cands.append(Clip(label, z["best"].astype(np.float32), z["wave"] if kept else None, {"lsd_db": lsd}, z["params"] if kept else None))
            if not kept:
                notes.append(f"{label}: no clip kept with this result (delete its evals/ files to evaluate it again)")
            kind = "chance" if method == "prior" else "candidate"
            scale.append(Reference(f"{label}" + (" (chance)" if method == "prior" else ""), lsd, kind))
        section = Section(targets.label(j), Clip("target", target, targets.waves[j], params=targets.params[j]), cands, store.space, scale, notes)
        sections.append(section)
    gen = store.generator
    facts = [("command", meta["command"]), ("date", meta["date"]), ("store", f"{meta['store']['path']} ({gen['name']}, {meta['store']['n']} clips)"),
             ("targets", meta["targets"]), ("floor", floor_sentence(meta["floor"]))]
    kind = "test" if targets.source == "test" else "prior-drawn"
    title = f"{gen['name']}: {len(gallery)} {kind} target{'s' if len(gallery) > 1 else ''}, each beside the best of {s.draws} draws of every method"
    write_page(path, Page(title, sections, gen["sample_rate"], gen["n_samples"], store.frontend_config, facts))


def _gallery_figure(path: Path, out: Path, row: int, j: int, label: str, pairs, evals, store: Store, draws: int) -> None:
    """Target ``row`` (the ``j``-th, titled ``label``) beside each row's best candidate and its lsd_db, from the saved pictures."""
    from ..picture import grid_axes
    from ..plots import spectrogram_grid

    specs, titles = [], []
    for method, input in pairs:
        if method == "floor":  # a reference without candidates of its own
            continue
        with np.load(gallery_path(out, f"{method}-{input}", row)) as z:
            if not specs:
                specs.append(z["target"].astype(np.float32))
                titles.append(f"target ({label})")
            specs.append(z["best"].astype(np.float32))
        lsd = evals[(method, input)]["records"][j]["lsd_db_best"]
        titles.append(f"{method}" + ("" if method == "prior" else f" / {input}") + f": {lsd:.1f} dB")
    gen = store.generator
    spectrogram_grid(
        specs,
        titles,
        path,
        **grid_axes(store.frontend_config, gen["sample_rate"], gen["n_samples"]),
        ncols=4,
        suptitle=f"{label}: target and the best of {draws} draws of each method (lsd_db)",
    )
