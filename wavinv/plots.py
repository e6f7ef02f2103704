"""Figures: spectrogram grids, target beside its best candidates (matplotlib, no display needed)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from .outputs import atomic_path
from .targets import DEFAULT_DB_RANGE

__all__ = ["plot_inversion", "spectrogram_grid"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def spectrogram_grid(
    specs: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | os.PathLike,
    sample_rate: int | None = None,
    duration: float | None = None,
    ncols: int = 4,
    db_range: tuple[float, float] = DEFAULT_DB_RANGE,
    suptitle: str | None = None,
) -> None:
    """Write a PNG grid of dB spectrograms ``(F, T)``, low frequencies at the bottom."""
    plt = _pyplot()
    n = len(specs)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.9 * nrows), squeeze=False, constrained_layout=True)
    extent = None
    if sample_rate and duration:
        extent = (0.0, duration, 0.0, sample_rate / 2000.0)
    im = None
    for ax, spec, title in zip(axes.flat, specs, titles):
        im = ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=db_range[0], vmax=db_range[1], extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        if extent:
            ax.set_xlabel("time (s)", fontsize=8)
            ax.set_ylabel("kHz", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="dB")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def plot_inversion(inversion, path: str | os.PathLike, k: int = 3) -> None:
    """The target spectrogram beside its ``k`` best candidates, with their distances."""
    k = min(k, len(inversion.params))
    specs = [inversion.target_spectrogram] + [inversion.spectrograms[i] for i in range(k)]
    titles = ["target"]
    for i in range(k):
        d = ", ".join(f"{name} {vals[i]:.2f}" for name, vals in inversion.distances.items())
        titles.append(f"#{i + 1}: {d}")
    from .picture import grid_axes

    gen = inversion.generator
    spectrogram_grid(
        specs,
        titles,
        path,
        **grid_axes(getattr(inversion, "frontend", None), gen.get("sample_rate"), gen.get("n_samples")),
        ncols=k + 1,
        suptitle=f"{inversion.method} on {gen.get('name')}: best {k} of {inversion.n_draws} draws",
    )


# -- benchmark figures: rows as in the bench's results.csv (mean, _lo, _hi per metric) --------------
_INPUT_STYLE = {"spectrogram": ("tab:blue", "o"), "waveform": ("tab:orange", "s"), "any": ("tab:gray", "D")}


def _err(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """``(2, n)`` error-bar lengths below and above each row's mean, from ``key_lo``/``key_hi``."""
    v = np.array([r[key] for r in rows], dtype=float)
    return np.vstack([v - np.array([r[f"{key}_lo"] for r in rows], dtype=float), np.array([r[f"{key}_hi"] for r in rows], dtype=float) - v])


def _plain_log_ticks(ax) -> None:
    """Label a log x axis with plain numbers; label minor ticks too when it spans less than a decade."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain if hi / lo < 10 else NullFormatter())


def _save(fig, path: str | os.PathLike) -> None:
    """Write a bench figure as a PNG, whole or not at all, and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    _pyplot().close(fig)


# rows drawn as reference lines, not as bars or points: chance and the same-sound floor
_REFERENCES = ("prior", "floor")


def bench_bars(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    metrics: Sequence[tuple[str, str]] = (("lsd_db_best", "lsd_db best-of-K (dB)"), ("lsd_db_median", "lsd_db median-of-K (dB)")),
    title: str | None = None,
) -> None:
    """Grouped bars per method, one bar per input, with interval whiskers; the prior (chance) as a dashed line."""
    plt = _pyplot()
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] not in _REFERENCES))
    inputs = list(dict.fromkeys(r["input"] for r in rows if r["method"] not in _REFERENCES))
    prior = next((r for r in rows if r["method"] == "prior"), None)
    floor = next((r for r in rows if r["method"] == "floor"), None)
    width = 0.8 / max(1, len(inputs))
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(5.0, 1.1 * len(methods) + 2) * len(metrics), 4.0), squeeze=False, constrained_layout=True)
    for ax, (key, label) in zip(axes.flat, metrics):
        for j, inp in enumerate(inputs):
            sel = [(i, r) for i, m in enumerate(methods) for r in rows if r["method"] == m and r["input"] == inp]
            if not sel:
                continue
            x = np.array([i for i, _ in sel]) + (j - (len(inputs) - 1) / 2) * width
            rs = [r for _, r in sel]
            ax.bar(x, [r[key] for r in rs], width, yerr=_err(rs, key), capsize=3, label=inp, color=_INPUT_STYLE.get(inp, ("tab:green", "o"))[0])
        if prior is not None:
            ax.axhline(prior[key], color="k", ls="--", lw=1, label=f"prior (chance) {prior[key]:.2f}")
            ax.axhspan(prior[f"{key}_lo"], prior[f"{key}_hi"], color="k", alpha=0.08)
        if floor is not None:
            ax.axhline(floor[key], color="tab:green", ls=":", lw=1.5, label=f"floor (same sound) {floor[key]:.2f}")
        ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def bench_scatter(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    key: str = "lsd_db_best",
    label: str = "lsd_db best-of-K (dB)",
    title: str | None = None,
) -> None:
    """Quality against cost: ``key`` vs fit time and vs invert time per target (log seconds).

    Colour is the method, marker the input; the prior (chance) is a dashed line.
    """
    plt = _pyplot()
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] not in _REFERENCES))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    prior = next((r for r in rows if r["method"] == "prior"), None)
    floor = next((r for r in rows if r["method"] == "floor"), None)
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 4.4), squeeze=False, constrained_layout=True)
    for ax, (cost, xlabel) in zip(axes.flat, (("fit_s", "fit time (s)"), ("invert_s", "invert time per target (s)"))):
        for r in rows:
            if r["method"] in _REFERENCES:
                continue
            marker = _INPUT_STYLE.get(r["input"], ("", "o"))[1]
            x = max(float(r[cost]), 1e-3)
            ax.errorbar(x, r[key], yerr=_err([r], key), fmt=marker, color=colors[r["method"]], capsize=3, label=f"{r['method']} / {r['input']}")
        if prior is not None:
            ax.axhline(prior[key], color="k", ls="--", lw=1, label="prior (chance)")
            ax.axhspan(prior[f"{key}_lo"], prior[f"{key}_hi"], color="k", alpha=0.08)
        if floor is not None:
            ax.axhline(floor[key], color="tab:green", ls=":", lw=1.5, label="floor (same sound)")
        ax.set_xscale("log")
        _plain_log_ticks(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def bench_anytime(cells: Sequence[Mapping[str, Any]], budgets: Sequence[int], path: str | os.PathLike, title: str | None = None) -> None:
    """Gap closed against renders per target (log x): one line per row with a search, its interval as a band;
    chance (0) and the same sound (1) as reference lines. ``cells`` as in the bench's ``anytime.csv``."""
    plt = _pyplot()
    rows = list(dict.fromkeys((c["method"], c["input"]) for c in cells))
    colors = {r: plt.get_cmap("tab10")(i % 10) for i, r in enumerate(rows)}
    fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
    for row in rows:
        got = [c for c in cells if (c["method"], c["input"]) == row and c["gap_closed"] is not None and np.isfinite(c["gap_closed"])]
        if not got:
            continue
        x = np.array([c["budget"] for c in got], dtype=float)
        label = row[0] if row[1] == "any" else f"{row[0]} / {row[1]}"
        ax.plot(x, [c["gap_closed"] for c in got], marker="o", ms=3, color=colors[row], label=label)
        ax.fill_between(x, [c["gap_closed_lo"] for c in got], [c["gap_closed_hi"] for c in got], color=colors[row], alpha=0.15, lw=0)
    ax.axhline(0.0, color="k", ls="--", lw=1, label="prior (chance)")
    ax.axhline(1.0, color="tab:green", ls=":", lw=1.5, label="floor (same sound)")
    ax.set_xscale("log")
    ax.set_xlim(min(budgets) / 1.3, max(budgets) * 1.3)
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(list(budgets), [f"{b:,}" for b in budgets])  # the budgets themselves, not powers of ten
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("renders per target")
    ax.set_ylabel("gap closed")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)
