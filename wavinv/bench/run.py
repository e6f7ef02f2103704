"""The ``bench`` driver: fit, invert and score every row of a store's table, then write the report."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from ..errors import InputError, StoreError
from ..generators import recorded_generator
from ..gradient import differentiable
from ..inverter import GRADIENT_STARTS, inversion_memory, search_renders
from ..limits import require_memory
from ..outputs import check_output_dir
from ..store import Store, open_store
from .cache import check_reusable, fit_or_load, load_evals, make_eval_key, make_model_key, model_info
from .anytime import anytime_rows
from .evaluate import evaluate
from .floor import evaluate_floor
from .provenance import command_line, run_meta
from .report import write_outputs
from .settings import Entry, Settings, make_entries, make_settings
from .table import table_rows
from .targets import BenchTargets, pick_targets

__all__ = ["BenchResult", "bench"]

# one logger for the whole package: its lines read "wavinv.bench: ..." wherever they come from
log = logging.getLogger(__package__)


@dataclass
class BenchResult:
    """What ``bench`` wrote: rows (as in ``results.csv``), the anytime cells (as in ``anytime.csv``),
    provenance, files and what was reused."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    out: Path
    files: dict[str, Path]
    fitted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    anytime: list[dict[str, Any]] = field(default_factory=list)

    def markdown(self) -> str:
        return (self.out / "results.md").read_text()

    def summary(self) -> str:
        """A few lines for a terminal: lsd_db best-of-K with its interval, and the costs."""
        lines = [f"{'method':<24} {'input':<12} {'lsd_db best-of-K [95% CI]':<28} {'gap closed':>10} {'fit s':>8} {'invert s':>9}"]
        for r in self.rows:
            ci = f"{r['lsd_db_best']:.2f} [{r['lsd_db_best_lo']:.2f}, {r['lsd_db_best_hi']:.2f}]"
            lines.append(f"{r['method']:<24} {r['input']:<12} {ci:<28} {r['gap_closed']:>10.2f} {r['fit_s']:>8.1f} {r['invert_s']:>9.2f}")
        done = f"{len(self.fitted)} fitted, {len(self.reused)} reused, {len(self.evaluated)} evaluated"
        lines.append(f"{self.out / 'results.md'} ({done}; {self.meta['wall_s']:.0f} s)")
        return "\n".join(lines)


def bench(
    store: str | os.PathLike | Store,
    out: str | os.PathLike,
    methods: str | Sequence[str] | None = None,
    inputs: str | Sequence[str] | None = None,
    profile: str = "quick",
    targets: int | None = None,
    k: int | None = None,
    draws: int | None = None,
    samples: int | None = None,
    gallery: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    generator: str | None = None,
    command: str | None = None,
    progress: bool = True,
    refine: int | None = None,
    budgets: str | Sequence[int] | None = None,
    targets_from: str = "test",
    target_noise_seed: int | None = None,
    gradient: int | None = None,
    screen_factor: int | None = None,
) -> BenchResult:
    """Fit, invert and score every (method, input) pair; write tables and plots into ``out``.

    Settings not given come from ``profile`` (``PROFILES``). ``targets`` clips are
    inverted: the store's test split (``targets_from="test"``) or patches drawn from the
    prior with ``seed`` (``"prior"``), rendered with ``target_noise_seed`` where given
    (a generator that takes no seed refuses it); the best ``k`` of ``draws`` draws are kept; diversity,
    coverage@80 and param_mae of the mean use ``samples`` more draws per target.
    ``overrides`` maps a method (or ``"method:input"``) to hyper-parameters.
    ``refine`` > 0 adds ``METHOD+refine`` rows and the search peers (see ``make_entries``);
    those record their best lsd_db after each of ``budgets`` renders per target (increasing;
    default ``DEFAULT_BUDGETS`` and draws + refine), the anytime table and ``anytime.png``;
    ``gradient`` > 0 adds ``METHOD+refine+gradient`` rows (a differentiable generator only);
    ``screen_factor`` is their searches' refine option (None: the inverter's default).
    The ``floor`` row is each target's true parameters rendered as ``wavinv.floor``'s rule
    decides on the first targets (another noise seed, or their own render).
    ``generator`` re-renders candidates (default: the store's built-in generator).
    ``command`` is recorded as the command that made the results (default: the
    equivalent ``wavinv bench`` command). Bad settings raise ``InputError``, a
    missing or incomplete store ``StoreError``.
    """
    s = make_settings(profile, methods, inputs, targets, k, draws, samples, gallery, seed, overrides, refine, budgets, targets_from, target_noise_seed,
                      gradient, screen_factor)
    store = _open_store(store, s)
    entries = make_entries(s)  # builds every estimator: a bad hyper-parameter fails now, not an hour in
    gen = _attach_generator(store, s, generator)
    if s.gradient:
        _check_gradient(s, gen)
    for entry in entries:  # a model of another generator left in out/models: refused before anything is written
        check_reusable(Path(out), f"{entry.method}-{entry.input}", make_model_key(store, s, entry.method, entry.input), store)
    chosen = pick_targets(store, gen, s.targets_from, s.target_noise_seed, s.targets, s.seed)
    out = _prepare_out(out, store)

    result = BenchResult(rows=[], meta={}, out=out, files={})
    t_start = time.perf_counter()
    # bars inside a row's bar redraw it with cursor moves: only on a terminal, never into a log file
    inner = progress and sys.stderr.isatty()
    pairs, evals, floor = _run_rows(entries, store, gen, s, chosen, out, result, progress, inner)
    result.rows = table_rows(evals, pairs, s)
    result.meta = run_meta(store, out, s, chosen, floor, evals, t_start, command or command_line(store, out, s, generator))
    cells, missing = anytime_rows(evals, pairs, s, [(e.label, e.input) for e in entries if e.searches])
    result.anytime = cells
    result.files = write_outputs(out, result.rows, result.meta, evals, pairs, chosen, s, store, (cells, missing))
    return result


def _check_gradient(s: Settings, gen) -> None:
    """Refuse, before any work, gradient rows the generator cannot run or the search's budget cannot hold."""
    if not differentiable(gen):
        raise InputError(f"gradient {s.gradient}: {gen.name} offers no render_torch (a differentiable render), so no gradient rows can run")
    search = search_renders(s.refine, s.k, len(gen.space))
    if s.gradient * GRADIENT_STARTS > search:
        raise InputError(f"gradient {s.gradient}: {s.gradient} steps from {GRADIENT_STARTS} points are {s.gradient * GRADIENT_STARTS} renders, "
                         f"more than the search's {search} of refine {s.refine}")


def _open_store(store: str | os.PathLike | Store, s: Settings) -> Store:
    """The store, complete and with what the settings' inputs need: fails before any work starts."""
    store = store if isinstance(store, Store) else open_store(store)
    store.require_complete()
    if "spectrogram" in s.inputs and store.frontend_config is None:
        raise StoreError(f"{store.location} records no frontend, so it has no spectrograms: use --inputs waveform")
    return store


def _attach_generator(store: Store, s: Settings, generator: str | None):
    """The generator that re-renders candidates, attached to the store; fails early when memory is short."""
    gen = recorded_generator(store.generator, generator, str(store.location), StoreError)
    store.attach(gen)  # re-renders the targets of a store without waveforms
    fe = store.frontend_config
    spec_shape = (fe["n_freq"], fe["n_frames"]) if fe else (1, 1)
    need = inversion_memory(store.n_samples, len(store.space), spec_shape, max(s.draws, s.samples), 4 * s.k)
    require_memory(need, f"{max(s.draws, s.samples)} draws per target")
    return gen


def _prepare_out(out: str | os.PathLike, store: Store) -> Path:
    """``out`` checked (never the store itself) and with its ``models`` and ``evals`` folders."""
    out = Path(out)
    check_output_dir("--out", out, {"store": store.location.local})
    for sub in ("models", "evals"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    return out


def _run_rows(
    entries: list[Entry], store: Store, gen, s: Settings, targets: BenchTargets, out: Path, result: BenchResult, progress: bool, inner: bool
) -> tuple[list[tuple[str, str]], dict[tuple[str, str], dict[str, Any]], dict[str, Any]]:
    """Every row of the table, then the floor: ``(pairs, evals, the floor's probe and decision)``.

    ``pairs`` lists the rows' ``(label, input)`` in table order; ``evals`` maps
    each to its model sidecar and its per-target records, in target order.
    """
    evals: dict[tuple[str, str], dict[str, Any]] = {}
    pairs = [(e.label, e.input) for e in entries]
    bar = tqdm(entries, desc="bench", unit="row", disable=not progress)
    for entry in bar:
        bar.set_postfix_str(f"{entry.label}/{entry.input}")
        evals[(entry.label, entry.input)] = _run_row(entry, store, gen, s, targets, out, result, inner)
    bar.close()
    floor = evaluate_floor(gen, store, s, targets, out, inner)
    pairs.append(("floor", s.inputs[0]))
    evals[("floor", s.inputs[0])] = {"model": {"fit_s": 0.0, "model_mb": 0.0}, "records": [floor["targets"][str(int(r))] for r in targets.ids]}
    return pairs, evals, floor["probe"]


def _run_row(entry: Entry, store: Store, gen, s: Settings, targets: BenchTargets, out: Path, result: BenchResult, inner: bool) -> dict[str, Any]:
    """One row: reuse what a run with the same keys saved, fit or evaluate only what is missing.

    Records in ``result`` what was fitted, reused and evaluated; returns the
    row's model sidecar and per-target records.
    """
    method, input, sampler = entry.method, entry.input, entry.sampler
    name, model_name = f"{entry.label}-{input}", f"{method}-{input}"
    key = make_model_key(store, s, method, input)
    ev_path = out / "evals" / f"{name}.json"
    ev = load_evals(ev_path, make_eval_key(key, s, entry), entry, model_name)
    todo = [int(r) for r in targets.ids if str(int(r)) not in ev["targets"]]
    model = model_info(out, model_name, key)
    if todo or model is None:
        cached = model is not None
        inv, model = fit_or_load(store, gen, out, model_name, key, method, input, model, inner)
        (result.reused if cached else result.fitted).append(model_name)
        if sampler is not None:
            inv.estimator.set_params(sampler=sampler)
        if todo:
            evaluate(inv, gen, store, s, entry, targets, ev, ev_path, out, name, inner)
            result.evaluated.append(name)
    else:
        result.reused.append(name)
        log.info("%s: model and all %d target results reused", name, len(targets.ids))
    return {"model": model, "records": [ev["targets"][str(int(r))] for r in targets.ids]}
