"""The benchmark harness: which input and which method invert the generator best, at what cost.

``bench`` fits every (method, input) pair on a store's train split, inverts
held-out targets from its test split (never seen in fitting), re-renders every
candidate with the generator and writes, into ``out``:

- ``results.md``, ``results.csv``, ``results.json``: one row per (method, input),
  each metric the mean over targets with a 95% bootstrap interval; the prior row
  (random parameters) is the chance level and is always there;
- ``lsd_db.png`` (bars), ``quality_vs_cost.png`` (scatter), ``gallery-N.png``
  (a target beside every method's best candidate);
- ``models/{method}-{input}.joblib`` + ``.json`` and ``evals/{method}-{input}.json``:
  fitted models and per-target results, reused when the store and settings
  match, so an interrupted bench resumes where it stopped.

Bootstrap resamples are drawn once and shared by every row (the targets are the
same for every row), so the interval of a difference between two rows is a
paired one: ``results`` reports each row's lsd_db best-of-K minus the best row's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .errors import InputError, StoreError
from .generators import recorded_generator, render_checked, takes_seed
from .inverter import Inverter, estimator_progress, fit_inverter, inversion_memory, load
from .limits import cpu_count, int_arg, require_memory
from .methods import INPUTS, build_method, method_names
from .metrics import coverage, diversity, lsd_db, mrstft, param_mae
from .refine import MIN_DISTANCE, SEARCH_VERSION
from .store import Store, open_store, same_generator
from .outputs import atomic_path, atomic_paths, check_output_dir
from .picture import picture_label
from .profiles import PROFILES  # plain data, also read by the CLI's help
from .targets import Target

__all__ = ["BenchResult", "bench", "bootstrap_ci"]

log = logging.getLogger(__name__)

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
# The floor renders each target's true parameters with this noise seed (any seed but the default).
FLOOR_SEED = 1
N_BOOT = 1000
LEVEL = 0.95


def get_profile(name: str) -> dict[str, Any]:
    """A copy of a named profile (``quick``, ``full``, ``test``)."""
    if name not in PROFILES:
        raise InputError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
    return json.loads(json.dumps(PROFILES[name]))


def parse_list(text: str | Sequence[str] | None, what: str) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (no empty items, no repeats)."""
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    if not items or any(not s for s in items):
        raise InputError(f"{what}: expected a comma-separated list without empty items, got {text!r}")
    return list(dict.fromkeys(items))


# -- statistics -----------------------------------------------------------------------------
def boot_indices(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` resampling indices; the same for every row, so differences are paired."""
    return np.random.default_rng(np.random.SeedSequence([seed, n, n_boot])).integers(0, n, size=(n_boot, n))


def bootstrap_ci(values, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0, indices: np.ndarray | None = None) -> tuple[float, float, float]:
    """Mean of ``values`` and the percentile bootstrap interval of the mean: ``(mean, lo, hi)``."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise InputError(f"bootstrap_ci needs a non-empty 1-D array, got shape {x.shape}")
    if indices is None:
        indices = boot_indices(len(x), n_boot, seed)
    means = x[indices].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean()), float(lo), float(hi)


# -- provenance -----------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, torch device and the code version the numbers come from."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    cores = cpu_count()
    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    return {
        "cpu": cpu,
        "cores": cores,
        "ram_gib": ram,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "device": device,
        "wavinv": __version__,
        "git": _git_commit(),
    }


def _git_commit() -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        # --no-optional-locks: only read, never refresh the index
        status = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n"


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(_json_text(obj))


# -- the run --------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """What ``bench`` wrote: rows (as in ``results.csv``), provenance, files and what was reused."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    out: Path
    files: dict[str, Path]
    fitted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)

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


@dataclass
class _Settings:
    profile: str
    methods: list[str]
    inputs: list[str]
    targets: int
    k: int
    draws: int
    samples: int
    gallery: int
    seed: int
    overrides: dict[str, dict[str, Any]]
    refine: int = 0

    def overrides_for(self, method: str, input: str) -> dict[str, Any]:
        """``overrides[method]`` updated by ``overrides["method:input"]``."""
        return {**self.overrides.get(method, {}), **self.overrides.get(f"{method}:{input}", {})}


def _settings(profile: str, methods, inputs, targets, k, draws, samples, gallery, seed, overrides, refine=None) -> _Settings:
    prof = get_profile(profile)
    known = method_names()
    if methods is None:
        # a profile names every method it knows settings for; run those this wavinv has
        missing = [m for m in prof["methods"] if m not in known]
        if missing:
            log.warning("profile %s: methods %s are not available here; skipping them", profile, ", ".join(missing))
        methods = [m for m in prof["methods"] if m in known]
    methods = parse_list(methods, "methods")
    inputs = parse_list(inputs, "inputs") or prof["inputs"]
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise InputError(f"unknown method {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    bad = [i for i in inputs if i not in INPUTS]
    if bad:
        raise InputError(f"unknown input {', '.join(map(repr, bad))} (known: {', '.join(INPUTS)})")
    # the prior is the chance level every table shows: always there, first
    methods = ["prior"] + [m for m in methods if m != "prior"]
    merged = {m: dict(v) for m, v in prof.get("overrides", {}).items()}
    for name, ov in (overrides or {}).items():
        merged[name] = {**merged.get(name, {}), **ov}
    s = _Settings(
        profile=profile,
        methods=methods,
        inputs=inputs,
        targets=int_arg("targets", prof["targets"] if targets is None else targets, 1),
        k=int_arg("k", prof["k"] if k is None else k, 1),
        draws=int_arg("draws", prof["draws"] if draws is None else draws, 1),
        samples=int_arg("samples", prof["samples"] if samples is None else samples, 2),
        gallery=int_arg("gallery", prof.get("gallery", 3) if gallery is None else gallery, 0),
        seed=int_arg("seed", prof.get("seed", 0) if seed is None else seed, 0),
        overrides=merged,
        refine=int_arg("refine", prof.get("refine", 0) if refine is None else refine, 0),
    )
    if s.k > s.draws:
        raise InputError(f"k (candidates kept) must be <= draws, got k={s.k}, draws={s.draws}")
    return s


def _pairs(s: _Settings) -> list[tuple[str, str]]:
    """Every (method, input); the prior ignores its input, so it runs once."""
    return [("prior", s.inputs[0])] + [(m, i) for m in s.methods if m != "prior" for i in s.inputs]


@dataclass(frozen=True)
class _Entry:
    """One row of the table: a fitted method and how it is inverted."""

    label: str
    method: str
    input: str
    sampler: str | None = None
    refine: int = 0  # extra renders per target spent on search through the generator
    draws: int | None = None  # None: the settings' draws


def _entries(s: _Settings) -> list[_Entry]:
    """The table's rows.

    A neural method trained with the flow head also samples by latent noise
    (``sampler="latent-noise"``) from the same fit, so both sampling heads get a
    row, ``"METHOD+latent-noise"``, for the cost of one training. With
    ``refine`` > 0 every method gets a ``METHOD+refine`` row from the same fit,
    and two peers that learn nothing get rows at the same render budget
    (draws + refine): ``cma-search`` (the prior's draws refined: search alone)
    and ``random-search`` (the best of draws + refine random patches).
    """
    rows = []
    for method, input in _pairs(s):
        rows.append(_Entry(method, method, input))
        params = build_method(method, **s.overrides_for(method, input)).get_params()
        if "sampler" in params and params.get("head") == "flow":
            rows.append(_Entry(f"{method}+latent-noise", method, input, "latent-noise"))
        if s.refine and method == "prior":
            rows.append(_Entry("random-search", method, input, draws=s.draws + s.refine))
            rows.append(_Entry("cma-search", method, input, refine=s.refine))
        elif s.refine:
            rows.append(_Entry(f"{method}+refine", method, input, refine=s.refine))
    return rows


def _command(store: Store, out: Path, s: _Settings, generator: str | None) -> str:
    """The ``wavinv bench`` command that reproduces this run with every setting spelled out."""
    args = ["wavinv", "bench", "--store", str(store.location), "--out", str(out), "--profile", s.profile]
    args += ["--methods", ",".join(s.methods), "--inputs", ",".join(s.inputs)]
    args += ["--targets", str(s.targets), "--k", str(s.k), "--draws", str(s.draws), "--samples", str(s.samples), "--seed", str(s.seed)]
    if s.refine:
        args += ["--refine", str(s.refine)]
    if generator:
        args += ["--generator", generator]
    return shlex.join(args)


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
) -> BenchResult:
    """Fit, invert and score every (method, input) pair; write tables and plots into ``out``.

    Settings not given come from ``profile`` (``PROFILES``). ``targets`` test-split
    clips are inverted, keeping the best ``k`` of ``draws`` draws each; diversity,
    coverage@80 and param_mae of the mean use ``samples`` more draws per target.
    ``overrides`` maps a method (or ``"method:input"``) to hyper-parameters.
    ``refine`` > 0 adds ``METHOD+refine`` rows and the search peers (see ``_entries``).
    A generator that takes a seed gets a ``floor`` row: each target's true
    parameters re-rendered with another noise seed.
    ``generator`` re-renders candidates (default: the store's built-in generator).
    ``command`` is recorded as the command that made the results (default: the
    equivalent ``wavinv bench`` command). Bad settings raise ``InputError``, a
    missing or incomplete store ``StoreError``.
    """
    s = _settings(profile, methods, inputs, targets, k, draws, samples, gallery, seed, overrides, refine)
    store = store if isinstance(store, Store) else open_store(store)
    store.require_complete()
    if "spectrogram" in s.inputs and store.frontend_config is None:
        raise StoreError(f"{store.location} records no frontend, so it has no spectrograms: use --inputs waveform")
    test_idx = store.split_indices("test")
    if len(test_idx) == 0:
        raise InputError(f"{store.location}: the test split is empty; generate more samples")
    if s.targets > len(test_idx):
        log.warning("%s has %d test clips; using all of them, not %d", store.location, len(test_idx), s.targets)
    # a prefix of one fixed permutation: asking for more targets later keeps the first ones
    positions = np.random.default_rng(np.random.SeedSequence([s.seed, 7])).permutation(len(test_idx))[: s.targets]
    rows = test_idx[positions]
    entries = _entries(s)  # builds every estimator: a bad hyper-parameter fails now, not an hour in
    gen = recorded_generator(store.generator, generator, str(store.location), same_generator, StoreError)
    store.attach(gen)  # re-renders the targets of a store without waveforms
    fe = store.frontend_config
    spec_shape = (fe["n_freq"], fe["n_frames"]) if fe else (1, 1)
    need = inversion_memory(store.n_samples, len(store.space), spec_shape, max(s.draws, s.samples), 4 * s.k)
    require_memory(need, f"{max(s.draws, s.samples)} draws per target")

    out = Path(out)
    check_output_dir("--out", out, {"store": store.location.local})
    for sub in ("models", "evals"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    result = BenchResult(rows=[], meta={}, out=out, files={})
    evals: dict[tuple[str, str], dict[str, Any]] = {}
    t_start = time.perf_counter()
    pairs = [(e.label, e.input) for e in entries]
    bar = tqdm(entries, desc="bench", unit="row", disable=not progress)
    # bars inside a row's bar redraw it with cursor moves: only on a terminal, never into a log file
    inner = progress and sys.stderr.isatty()
    for entry in bar:
        label, method, input, sampler = entry.label, entry.method, entry.input, entry.sampler
        bar.set_postfix_str(f"{label}/{input}")
        name, model_name = f"{label}-{input}", f"{method}-{input}"
        model_key = {
            "store": store.fingerprint,
            "method": method,
            "input": input,
            "overrides": s.overrides_for(method, input),
            "profile": s.profile,
            "wavinv": __version__,
        }
        eval_key = {"model": _hash(model_key), "k": s.k, "draws": s.draws, "samples": s.samples, "seed": s.seed, "gallery": s.gallery}
        if sampler is not None:
            eval_key["sampler"] = sampler
        if entry.refine:
            eval_key["refine"] = entry.refine
            eval_key["search"] = {"version": SEARCH_VERSION, "min_distance": MIN_DISTANCE}
        if entry.draws is not None:
            eval_key["draws"] = entry.draws
        ev_path = out / "evals" / f"{name}.json"
        ev = _read_json(ev_path)
        if not ev or ev.get("key") != json.loads(json.dumps(eval_key)):
            ev = {"key": eval_key, "method": label, "input": input, "model_name": model_name, "targets": {}}
        todo = [int(r) for r in rows if str(int(r)) not in ev["targets"]]
        model = _model_info(out, model_name, model_key)
        if todo or model is None:
            inv, model = _fit_or_load(store, gen, out, model_name, model_key, method, input, model, result, inner)
            if sampler is not None:
                inv.estimator.set_params(sampler=sampler)
            if todo:
                _evaluate(inv, gen, store, s, entry, positions, rows, ev, ev_path, out, name, inner)
                result.evaluated.append(name)
        else:
            result.reused.append(name)
            log.info("%s: model and all %d target results reused", name, len(rows))
        evals[(label, input)] = {"model": model, "records": [ev["targets"][str(int(r))] for r in rows]}
    bar.close()
    if takes_seed(gen):
        floor = _floor(gen, store, s, positions, rows, out, inner)
        pairs.append(("floor", s.inputs[0]))
        evals[("floor", s.inputs[0])] = {"model": {"fit_s": 0.0, "model_mb": 0.0}, "records": [floor["targets"][str(int(r))] for r in rows]}

    result.rows = _table(evals, pairs, s)
    meta = {
        "title": f"wavinv benchmark: {store.generator['name']} v{store.generator['version']}",
        "command": command or _command(store, out, s, generator),
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "store": {
            "path": str(store.location),
            "fingerprint": store.fingerprint,
            "generator": f"{store.generator['name']} v{store.generator['version']}",
            "n": store.n,
            "n_train": int(len(store.split_indices("train"))),
            "n_test": int(len(test_idx)),
            "seed": store.seed,
            "picture": picture_label(store.frontend_config),
        },
        "settings": {
            "profile": s.profile,
            "methods": s.methods,
            "inputs": s.inputs,
            "targets": int(len(rows)),
            "k": s.k,
            "draws": s.draws,
            "samples": s.samples,
            "seed": s.seed,
            "refine": s.refine,
            "bootstrap": {"resamples": N_BOOT, "level": LEVEL},
            "overrides": {f"{m}:{i}": s.overrides_for(m, i) for m, i in _pairs(s) if s.overrides_for(m, i)},
        },
        "target_ids": [int(r) for r in rows],
        "wall_s": round(time.perf_counter() - t_start, 1),
        # summed over every run that contributed (a resumed bench reuses earlier work)
        "fit_wall_s": round(sum(ev["model"].get("fit_wall_s", ev["model"]["fit_s"]) for ev in evals.values()), 1),
        "invert_wall_s": round(sum(r["invert_s"] for ev in evals.values() for r in ev["records"]), 1),
    }
    result.meta = meta
    result.files = _write_outputs(out, result.rows, meta, evals, pairs, rows, s, store)
    return result


def _model_info(out: Path, name: str, model_key: dict[str, Any]) -> dict[str, Any] | None:
    """The sidecar of a fitted model whose settings match ``model_key``, else None."""
    side = _read_json(out / "models" / f"{name}.json")
    if side and side.get("key") == json.loads(json.dumps(model_key, default=str)) and (out / "models" / f"{name}.joblib").is_file():
        return side
    return None


def _fit_or_load(
    store: Store, gen, out: Path, name: str, model_key, method: str, input: str, model, result: BenchResult, progress: bool
) -> tuple[Inverter, dict]:
    path = out / "models" / f"{name}.joblib"
    if model is not None:
        log.info("%s: reusing the fitted model %s", name, path)
        result.reused.append(name)
        return load(path), model
    log.info("%s: fitting on %s", name, store.location)
    # settings that do not change the model, so they are not part of its key: progress bars,
    # and a checkpoint from which an interrupted neural fit resumes
    overrides = dict(model_key["overrides"])
    known = build_method(method).get_params()
    ckpt = out / "models" / f"{name}.ckpt"
    if "progress" in known and "progress" not in overrides:
        overrides["progress"] = progress
    if "checkpoint" in known and "checkpoint" not in overrides:
        overrides["checkpoint"] = str(ckpt)
    t0 = time.perf_counter()
    inv = fit_inverter(store, method, input, overrides=overrides, generator=gen)
    wall = time.perf_counter() - t0
    inv.save(path)
    ckpt.unlink(missing_ok=True)  # the saved model supersedes it
    model = {
        "key": model_key,
        "fit_s": float(inv.validation.get("fit_s", wall)),
        "fit_wall_s": round(wall, 3),
        "model_mb": round(path.stat().st_size / 1e6, 3),
        "validation": inv.validation,
    }
    _write_json(out / "models" / f"{name}.json", model)
    result.fitted.append(name)
    return inv, model


def target_seeds(seed: int, row: int) -> tuple[int, int]:
    """Two independent seeds per target (draws, samples), the same for every method."""
    a, b = np.random.SeedSequence([seed, row]).generate_state(2)
    return int(a), int(b)


def _evaluate(
    inv: Inverter, gen, store: Store, s: _Settings, entry: _Entry, positions, rows, ev: dict, ev_path: Path, out: Path, name: str, progress: bool
) -> None:
    """Invert each target not yet in ``ev``; save after every target so an interruption loses one."""
    waves = store.waveforms("test")
    y_test = store.params_unit("test")
    gallery_rows = {int(r) for r in rows[: s.gallery]}
    todo = [(int(p), int(r)) for p, r in zip(positions, rows) if str(int(r)) not in ev["targets"]]
    for pos, row in tqdm(todo, desc=name, unit="target", leave=False, disable=not progress):
        wave = waves[pos]
        seed_draws, seed_samples = target_seeds(s.seed, row)
        res = inv.invert(
            Target("waveform", wave, f"{store.location.name}#id{row}"),
            n=s.k,
            draws=entry.draws or s.draws,
            generator=gen,
            random_state=seed_draws,
            refine=entry.refine,
        )
        X = wave[None] if inv.input == "waveform" else res.target_spectrogram[None]
        with estimator_progress(inv.estimator, False):  # one bar per row and target is enough
            samples = np.asarray(inv.estimator.sample(X, s.samples, random_state=seed_samples))[0]
        truth = y_test[pos]
        lsd = res.distances["lsd_db"]
        if row in gallery_rows:
            # float16 dB is within 0.06 dB at -100 dB: plenty for a picture
            np.savez_compressed(
                _gallery_path(out, name, row),
                target=res.target_spectrogram.astype(np.float16),
                best=res.spectrograms[0].astype(np.float16),
            )
        ev["targets"][str(row)] = {
            "lsd_db_best": float(lsd[0]),
            "lsd_db_median": float(np.median(lsd)),
            "mrstft_best": float(np.min(res.distances["mrstft"])),
            "param_mae_best": float(param_mae(truth, res.params_unit[0])),
            "param_mae_mean": float(param_mae(truth, samples.mean(axis=0))),
            "diversity": float(diversity(samples)),
            "spread": float(diversity(res.params_unit)),
            "coverage80": float(coverage(truth[None], samples[None], level=0.8)),
            "invert_s": float(res.timing["total"]),
            "n_candidates": int(len(lsd)),
            "n_unique": int(res.n_unique),
            "n_renders": int(res.n_renders),
        }
        _write_json(ev_path, ev)


def _floor(gen, store: Store, s: _Settings, positions, rows, out: Path, progress: bool) -> dict[str, Any]:
    """The same-sound floor per target: its true parameters rendered with ``FLOOR_SEED``, scored as a candidate.

    Saved in ``evals/floor.json`` and reused while the store and targets match.
    """
    path = out / "evals" / "floor.json"
    key = {"store": store.fingerprint, "seed": FLOOR_SEED, "frontend": store.frontend_config, "wavinv": __version__}
    ev = _read_json(path)
    if not ev or ev.get("key") != json.loads(json.dumps(key, default=str)):
        ev = {"key": key, "method": "floor", "targets": {}}
    todo = [(int(p), int(r)) for p, r in zip(positions, rows) if str(int(r)) not in ev["targets"]]
    if not todo:
        return ev
    from .frontend import spectrogram

    frontend = store.picture(gen)  # the store's picture, as every row is scored
    pos = np.array([p for p, _ in todo])
    # one read and one render for every target: the rows are independent
    waves = np.asarray(store.waveforms("test")[pos])
    others = render_checked(gen, store.params("test")[pos], seed=FLOOR_SEED)
    lsds = lsd_db(spectrogram(waves, frontend), spectrogram(others, frontend))
    for j, (_, row) in enumerate(tqdm(todo, desc="floor", unit="target", leave=False, disable=not progress)):
        lsd = float(lsds[j])
        ev["targets"][str(row)] = {
            "lsd_db_best": lsd,
            "lsd_db_median": lsd,
            "mrstft_best": float(np.asarray(mrstft(waves[j], others[j : j + 1]))[0]),
            "invert_s": 0.0,
            "n_unique": 1,
            "n_renders": 1,
        }
    _write_json(path, ev)
    return ev


def _gallery_path(out: Path, name: str, row: int) -> Path:
    return out / "evals" / f"{name}.gallery-{row}.npz"


def _table(evals: dict, pairs: list[tuple[str, str]], s: _Settings) -> list[dict[str, Any]]:
    """One row per pair: mean and bootstrap interval of each metric, cost columns."""
    n = len(next(iter(evals.values()))["records"])
    idx = boot_indices(n, N_BOOT, s.seed)
    table: list[dict[str, Any]] = []
    per_target: list[np.ndarray] = []
    for method, input in pairs:
        ev = evals[(method, input)]
        recs = ev["records"]
        row: dict[str, Any] = {"method": method, "input": "any" if method in _NOT_LEARNT else input, "n_targets": n}
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
        table.append(row)
    methods = [i for i, (m, _) in enumerate(pairs) if m != "floor"]
    best = methods[int(np.argmin([table[i]["lsd_db_best"] for i in methods]))]
    chance = per_target[0]  # the prior's row is always first
    floor = next((v for (m, _), v in zip(pairs, per_target) if m == "floor"), np.zeros(n))

    for row, values in zip(table, per_target):
        # paired: the same targets and the same resamples for both rows
        row["d_lsd_db_best"], row["d_lsd_db_best_lo"], row["d_lsd_db_best_hi"] = bootstrap_ci(values - per_target[best], indices=idx)
        row["gap_closed"], row["gap_closed_lo"], row["gap_closed_hi"] = _gap_closed(chance, floor, values, idx)
    return table


def _gap_closed(chance: np.ndarray, floor: np.ndarray, values: np.ndarray, idx: np.ndarray) -> tuple[float, float, float]:
    """(mean chance - mean row) / (mean chance - mean floor), with its paired bootstrap interval.

    A ratio of means, not a mean of per-target ratios: on a target whose chance
    level is about its floor (a noisy sound that random patches match as well as
    the same patch with other noise) a per-target ratio divides by ~0 and swings
    the mean by itself.
    """

    def ratio(rows: np.ndarray) -> np.ndarray:
        span = chance[rows].mean(axis=-1) - floor[rows].mean(axis=-1)
        return (chance[rows].mean(axis=-1) - values[rows].mean(axis=-1)) / np.where(span > 0, span, np.nan)

    point = float(ratio(np.arange(len(chance))))
    lo, hi = np.nanquantile(ratio(idx), [(1 - LEVEL) / 2, (1 + LEVEL) / 2]) if np.isfinite(point) else (np.nan, np.nan)
    return point, float(lo), float(hi)


# rows that learn nothing from the store: their input is "any"
_NOT_LEARNT = ("prior", "random-search", "cma-search", "floor")

# -- output -----------------------------------------------------------------------------------
CSV_COLUMNS = (
    ["method", "input", "n_targets"]
    + [c for key in METRICS for c in (key, f"{key}_lo", f"{key}_hi")]
    + ["d_lsd_db_best", "d_lsd_db_best_lo", "d_lsd_db_best_hi", "gap_closed", "gap_closed_lo", "gap_closed_hi"]
    + ["fit_s", "invert_s", "model_mb", "unique_draws", "renders"]
)


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: (f"{r[c]:.6g}" if isinstance(r[c], float) else "" if r[c] is None else r[c]) for c in CSV_COLUMNS})
    return buf.getvalue()


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


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any], figures: dict[str, str]) -> str:
    m, st, se = meta["machine"], meta["store"], meta["settings"]
    k = se["k"]
    ram = f", {m['ram_gib']} GiB RAM" if m["ram_gib"] else ""
    lines = [
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
        f"| settings | profile {se['profile']}: {se['targets']} test targets, best K={k} of {se['draws']} draws, "
        f"{se['samples']} samples for diversity / coverage / mean, {se['bootstrap']['resamples']} bootstrap resamples, seed {se['seed']} |",
        "",
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
        cells = [r["method"] + {"prior": " (chance)", "floor": " (same sound)"}.get(r["method"], ""), r["input"]]
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
    lines += [
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
        "- **floor**: each target's true parameters re-rendered with another noise seed (generators that take one): "
        "what the same sound scores. **gap closed**: (chance - row) / (chance - floor) on the means over the targets, "
        "chance being the prior's best-of-K lsd_db (floor 0 without a seed), with its paired bootstrap interval; "
        "0 is chance, 1 is as good as the same sound.",
        "- **random-search** and **cma-search** learn nothing: the best of draws + refine random patches, and the "
        "prior's draws refined by the same search as the `+refine` rows; both at the `+refine` rows' render budget.",
        "- **fit**: estimator training time on the train split; **invert**: draw, re-render and rank one target; "
        "**model**: the saved joblib file.",
        "",
    ]
    if se["overrides"]:
        lines += ["Hyper-parameters changed from the methods' defaults: "
                  + "; ".join(f"{name} `{json.dumps(ov, sort_keys=True)}`" for name, ov in se["overrides"].items()) + ".", ""]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{title}]({fname})" for fname, title in figures.items()]
        lines.append("")
    return "\n".join(lines)


def _write_outputs(out: Path, rows, meta, evals, pairs, target_rows, s: _Settings, store: Store) -> dict[str, Path]:
    """Tables and figures, all written or none (the per-row models and evals are kept either way)."""
    from .picture import grid_axes
    from .plots import bench_bars, bench_scatter, spectrogram_grid

    gallery = [int(row) for row in target_rows[: s.gallery]]
    figures = {"lsd_db.png": "lsd_db per method and input", "quality_vs_cost.png": "quality vs cost"}
    figures.update({f"gallery-{j + 1}.png": f"gallery: test id {row}" for j, row in enumerate(gallery)})
    names = [*figures, "results.md", "results.csv", "results.json"]
    title = f"{meta['store']['generator']}, {meta['settings']['targets']} test targets, best {s.k} of {s.draws} draws"
    gen = store.generator
    with atomic_paths(*(out / name for name in names)) as tmps:
        tmp = dict(zip(names, tmps))
        bench_bars(rows, tmp["lsd_db.png"], title=title)
        bench_scatter(rows, tmp["quality_vs_cost.png"], title=title)
        for j, row in enumerate(gallery):
            specs, titles = [], []
            for (method, input), r in zip(pairs, rows):
                if method == "floor":  # a reference without candidates of its own
                    continue
                with np.load(_gallery_path(out, f"{method}-{input}", row)) as z:
                    if not specs:
                        specs.append(z["target"].astype(np.float32))
                        titles.append(f"target (test id {row})")
                    specs.append(z["best"].astype(np.float32))
                lsd = evals[(method, input)]["records"][j]["lsd_db_best"]
                titles.append(f"{method}" + ("" if method == "prior" else f" / {input}") + f": {lsd:.1f} dB")
            spectrogram_grid(
                specs,
                titles,
                tmp[f"gallery-{j + 1}.png"],
                **grid_axes(store.frontend_config, gen["sample_rate"], gen["n_samples"]),
                ncols=4,
                suptitle=f"test id {row}: target and the best of {s.draws} draws of each method (lsd_db)",
            )
        tmp["results.csv"].write_text(_csv(rows))
        tmp["results.json"].write_text(_json_text({"meta": meta, "rows": rows}))
        tmp["results.md"].write_text(_markdown(rows, meta, figures))
    return {name: out / name for name in names}
