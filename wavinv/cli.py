"""The ``wavinv`` command line.

Every subcommand is a ``_cmd_*`` function registered in ``build_parser``. Errors a
user can cause are ``WavinvError``: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import logging.handlers
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import InputError, StoreError, WavinvError
from .limits import budget_list, human_bytes, total_memory
from .methods import INPUTS
from .outputs import atomic_paths, check_output_dir, check_outputs, new_folder
from .params import SAMPLINGS
from .targets import DEFAULT_DB_RANGE

if TYPE_CHECKING:  # for annotations only
    import numpy as np

__all__ = ["main", "candidates_report"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and exit status 2)."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(low: int):
    """An argparse type: an integer >= ``low`` (so ``--seed -1`` is a usage error, before any work)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


_NONNEG, _POSITIVE = _count(0), _count(1)


def _budgets(text: str) -> list[int]:
    """An argparse type: increasing positive render counts, ``16,64,256``."""
    try:
        return budget_list(text, "the budgets")
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _number(low: float, high: float, unit: str, low_open: bool = False):
    """An argparse type: a finite number from ``low`` (excluded with ``low_open``) to ``high``."""
    bounds = f"{'above' if low_open else 'at least'} {low:g}" + (f" and at most {high:g}" if high < float("inf") else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number ({unit}), got {text!r}") from None
        if not ((low < value) if low_open else (low <= value)) or not value <= high or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be {bounds} ({unit}), got {text}")
        return value

    parse.__name__ = unit
    return parse


_FRACTION = _number(0.0, 1.0, "a mean absolute difference on the 0-1 scale")
_SECONDS = _number(0.0, float("inf"), "seconds", low_open=True)


class _MethodIsFit(argparse.Action):
    """``generate --method``: the option's old name; --method now names only the estimator (``fit``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("--method names the estimator of `wavinv fit`; the parameter sampling is --sampling uniform|sobol")


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate

    store = generate(
        args.out,
        args.generator,
        args.n,
        seed=args.seed,
        sampling=args.sampling,
        chunk=args.chunk,
        workers=args.workers,
        progress=not args.quiet,
        scheduler=args.scheduler,
        cache_features=args.cache_features,
        waveforms=not args.no_waveforms,
    )
    if not args.quiet:
        caches = ", ".join(c.label for c in store.feature_caches().values())
        extra = (", no waveforms" if not store.keeps_waveforms else "") + (f", features {caches} cached" if caches else "")
        print(f"{store.location}: {store.n} samples of {store.generator['name']} in {store.n_chunks} chunks, complete{extra}")
    return 0


def _pool_shape(text: str) -> tuple[int, int]:
    """An argparse type: ``FxT`` (e.g. ``64x64``), two positive integers."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"expected FxT such as 64x64, got {text!r}")
    return int(parts[0]), int(parts[1])


_pool_shape.__name__ = "pool shape"


def _cmd_cache(args: argparse.Namespace) -> int:
    from .generate import cache_features

    cache = cache_features(args.store, args.pool, generator=args.generator, progress=not args.quiet)
    if not args.quiet:
        from .picture import picture_label

        print(f"{args.store}: features of {picture_label(cache.picture)} pooled to {cache.label} cached for {cache.store.n} clips ({cache.key})")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    rep = verify(args.store, rerender=args.rerender, generator=args.generator, seed=args.seed, progress=not args.quiet)
    for note in rep.notes:
        print(f"note: {note}")
    for problem in rep.problems:
        print(f"PROBLEM: {problem}")
    if not rep.ok:
        print(f"{rep.path}: NOT WHOLE ({len(rep.problems)} problem{'s' if len(rep.problems) > 1 else ''})")
        if rep.repair:
            print(f"repair: {rep.repair}  (re-renders the missing and damaged chunks)")
        return 1
    extra = f"; {len(rep.rerendered)} re-rendered samples match (max abs error {rep.max_abs_error:.3g})" if rep.rerendered else ""
    print(f"{rep.path}: OK: {rep.n} samples in {rep.n_chunks} chunks; checksums, ids and completion records all good{extra}")
    return 0


def _caches_line(info: dict) -> str:
    caches = info.get("feature_caches") or []
    if not caches:
        return "none"
    return "; ".join(f"{'x'.join(map(str, c['grid']))} ({c['chunks_current']} of {info['n_chunks']} chunks current)" for c in caches)


def _format_store_info(info: dict) -> str:
    gen, space = info["generator"], info["space"]
    names = ", ".join(space["names"][:6]) + (", ..." if space["n_params"] > 6 else "")
    scales = ", ".join(f"{v} {k}" for k, v in space["scales"].items())
    from .picture import picture_label

    frontend = picture_label(info["frontend"])
    return "\n".join(
        [
            f"store       {info['path']} (wavinv {info['wavinv_version']}, created {info['created']})",
            f"generator   {gen['name']} v{gen['version']}  spec {gen['spec']!r}",
            f"clips       {gen['n_samples']} samples @ {gen['sample_rate']} Hz ({info['clip_seconds']:.3f} s), {info['waveform_dtype']}"
            + ("" if info["waveforms"] else ", not kept (re-rendered by the generator when needed)"),
            f"space       {space['n_params']} params ({scales}): {names}  [fingerprint {space['fingerprint']}]",
            f"samples     N={info['n']}  seed {info['seed']}  sampling {info['sampling']}  "
            + "  ".join(f"{k} {v}" for k, v in info["splits"].items()),
            f"chunks      {info['chunks_complete']} of {info['n_chunks']} complete ({info['chunk']} samples each)"
            + ("" if info["complete"] else "  INCOMPLETE: re-run generate"),
            f"size        {info['bytes_on_disk'] / 1e6:.1f} MB on disk, {info['bytes_decoded'] / 1e6:.1f} MB decoded",
            f"picture     {frontend}",
            f"features    {_caches_line(info)}",
            f"fingerprint {info['fingerprint']}",
        ]
    )


def _cmd_info(args: argparse.Namespace) -> int:
    from .store import open_store

    path = args.path if "://" in args.path else Path(args.path)
    if isinstance(path, Path) and not path.exists():
        raise StoreError(f"{path}: no such file or directory")
    if isinstance(path, Path) and path.is_file():
        from .errors import ModelError
        from .modelfile import file_sha256, read_bytes_pinned, read_manifest

        if args.sha256:
            read_bytes_pinned(path, args.sha256)
        try:
            manifest = read_manifest(path)  # read without unpickling: runs nothing from the file
        except ModelError as e:
            raise StoreError(f"{path} is not a wavinv store or model ({e})") from None
        manifest = {**manifest, "sha256": file_sha256(path)}
        print(json.dumps(manifest, indent=2) if args.json else _format_model_info(manifest))
        return 0
    if args.sha256:
        raise InputError(f"--sha256 pins a model file; {path} is a store")
    info = open_store(path).summary()  # says why a folder is not a store, or what is damaged in one
    print(json.dumps(info, indent=2) if args.json else _format_store_info(info))
    return 0


def _format_model_info(m: dict) -> str:
    gen, v, st = m["generator"], m.get("validation", {}), m.get("store", {})
    from .picture import picture_label

    metrics = "  ".join(f"{k} {val:.4g}" for k, val in v.items() if isinstance(val, (int, float)))
    return "\n".join(
        [
            f"model       {m['method']} ({m['estimator']}) on {m['input']}, wavinv {m['wavinv_version']}",
            f"generator   {gen['name']} v{gen['version']}  spec {gen['spec']!r}  [fingerprint {gen['fingerprint']}]",
            f"picture     {picture_label(m['frontend'])}",
            f"trained on  {st.get('path')} ({st.get('n_train')} train clips, store {st.get('fingerprint')})",
            f"validation  {metrics or 'none'}",
            *_learnt_lines(v),
            *([f"training    {_training_line(m['training'])}"] if m.get("training") else []),
            f"sha256      {m['sha256']}",
            "warning     a model file is a pickle: loading it (invert, wavinv.load) runs code. Load only files you made or trust, "
            "pinned by their SHA-256: wavinv invert --sha256 HEX, wavinv.load(path, sha256=HEX)",
        ]
    )


def _training_line(training: dict) -> str:
    """How a fit was fed: the share of its steps' time spent waiting on data, the clips rendered for it."""
    parts = []
    if isinstance(training.get("data_wait_share"), (int, float)):
        parts.append(f"waited on data {100 * training['data_wait_share']:.1f}% of the step time")
    if isinstance(training.get("clips_rendered"), int):
        workers = training.get("render_workers")
        parts.append(f"{training['clips_rendered']} clips rendered " + (f"by {workers} worker process{'es' * (workers > 1)}" if workers else "in the training process"))
    return "; ".join(parts) or "no record"


def _learnt_lines(validation: dict) -> list[str]:
    """Which parameters a model pins down: each one's draw error over the prior's (1 = nothing learnt), and,
    where the fit measured it, a table beside each one's sensitivity (the most sensitive first)."""
    learnt = validation.get("learnt")
    rows = {n: r for n, r in learnt.items() if isinstance(r, dict)} if isinstance(learnt, dict) else {}
    if not rows:
        return []
    how = validation.get("sensitivity") if isinstance(validation.get("sensitivity"), dict) else {}
    if not any(isinstance(r.get("sensitivity_db"), (int, float)) for r in rows.values()):
        ratios = [(n, r["ratio"]) for n, r in rows.items() if isinstance(r.get("ratio"), (int, float))]
        shown = ", ".join(f"{n} {ratio:.2f}" for n, ratio in ratios[:6])
        skipped = [f"sensitivity not measured: {how['skipped']}"] if "skipped" in how else []
        return [f"learnt      {shown} (a draw's error over a random draw's, lowest first; {len(ratios)} parameters)", *(f"            {line}" for line in skipped)]

    def cell(value, width: int, fmt: str) -> str:
        return f"{value:>{width}{fmt}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"

    from .sensitivity import most_sensitive_first

    width = min(max(len(n) for n in [*rows, "parameter"]), 28)
    lines = [
        f"learnt      per parameter, the most sensitive first: a draw's error, a random draw's, their ratio (1: nothing learnt) and the sound's "
        f"change when it alone is redrawn (lsd_db, median of {how.get('rows', '?')} rows, {how.get('frames', '?')})",
        f"            {'parameter':<{width}}  posterior   prior   ratio  sensitivity dB",
    ]
    for name, r in most_sensitive_first(rows):
        lines.append(f"            {name[:width]:<{width}}  {cell(r.get('posterior'), 9, '.4f')} {cell(r.get('prior'), 7, '.4f')} "
                     f"{cell(r.get('ratio'), 7, '.2f')}  {cell(r.get('sensitivity_db'), 14, '.2f')}")
    return lines


_DB_RANGE = dict(
    nargs=2,
    type=float,
    default=None,
    metavar=("LOW", "HIGH"),
    help="dB span of a .png spectrogram's grey levels (default: the picture's own, as its generator declares "
    "with spectrogram_range; -100 0 for wavinv's frontend)",
)

_SCHEDULER_HELP = "run on a Dask cluster (needs wavinv[dask]): local:N for N local worker processes, or a scheduler address such as tcp://host:8786"


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="render a dataset store (re-running resumes, repairs damaged chunks; a larger --n grows it)")
    p.add_argument("--generator", required=True, metavar="SPEC", help="built-in name, package.module:attr or path/file.py:attr")
    p.add_argument("--n", required=True, type=_POSITIVE, metavar="N", help="number of samples")
    p.add_argument("--out", required=True, metavar="STORE", help="store directory (e.g. data/synth100-10k) or fsspec URL (s3://bucket/store)")
    p.add_argument("--seed", type=_NONNEG, default=0, help="parameter sampling seed (default 0)")
    p.add_argument("--sampling", default="uniform", choices=SAMPLINGS, help="how parameters are drawn (default uniform)")
    p.add_argument("--method", action=_MethodIsFit, help=argparse.SUPPRESS)
    p.add_argument("--chunk", type=_POSITIVE, default=None, metavar="C", help="samples per chunk (default: ~8 MiB of audio)")
    p.add_argument("--workers", type=_POSITIVE, default=1, metavar="W", help="worker processes (default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDR", help=_SCHEDULER_HELP + "; same bytes as a local run")
    p.add_argument(
        "--cache-features",
        action="store_true",
        help="also store every clip's spectrogram pooled to 64x64, what knn, pca-lgbm* and sbi-npe read: fits then compute no spectrogram "
        "(other grids: wavinv cache)",
    )
    p.add_argument(
        "--no-waveforms",
        action="store_true",
        help="keep no clips, only parameters and cached features (implies --cache-features); whatever needs clips re-renders them "
        "with the generator. Resuming needs the same flag",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_generate)


def _add_cache(sub) -> None:
    p = sub.add_parser(
        "cache",
        help="add or finish a store's feature cache: its spectrograms pooled once, for every later fit (re-running resumes, repairs)",
        description="Compute every clip's spectrogram, average-pooled to --pool, into the store (features/), so the methods "
        "that pool (knn, pca-lgbm, pca-lgbm-quantile, sbi-npe) read it instead of computing spectrograms at every fit. "
        "Interrupted, it resumes; chunks whose data changed or whose rows are damaged are computed again.",
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("--pool", type=_pool_shape, default=None, metavar="FxT", help="pooled grid, the methods' pool_shape (default 64x64)")
    p.add_argument(
        "--generator",
        default=None,
        metavar="SPEC",
        help="the store's generator, to re-render clips of a store without waveforms (or for its own picture); needed unless built in",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_cache)


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="check every chunk, id and completion record (exit 0 only when whole, 1 when not)")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--rerender", type=_NONNEG, default=0, metavar="K", help="also re-render K random samples and compare")
    p.add_argument(
        "--generator",
        default=None,
        metavar="SPEC",
        help="generator for --rerender; needed unless the store's generator is built in (a store never makes wavinv import code)",
    )
    p.add_argument("--seed", type=_NONNEG, default=None, help="seed choosing the re-rendered samples (default: random)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_verify)


def _sha256(text: str) -> str:
    """An argparse type: a SHA-256 as 64 hex digits."""
    from .modelfile import pinned_sha256

    try:
        return pinned_sha256(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_sha256.__name__ = "SHA-256"


def _add_info(sub) -> None:
    p = sub.add_parser(
        "info",
        help="what a store or model holds: generator, space, counts, frontend",
        description="Describe a store (reads JSON and chunk records only) or a model file: its manifest, read without "
        "unpickling (nothing in the file runs), and its SHA-256. A model file is a pickle: loading it (invert, wavinv.load) "
        "runs code, so load only model files you made or trust, pinned by the SHA-256 info prints (invert --sha256).",
    )
    p.add_argument("path", metavar="STORE_OR_MODEL", help="a store directory or URL, or a model file")
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.add_argument("--sha256", type=_sha256, default=None, metavar="HEX", help="refuse a model file whose SHA-256 is not HEX")
    p.set_defaults(func=_cmd_info)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench

    res = bench(
        args.store,
        args.out,
        methods=args.methods,
        inputs=args.inputs,
        profile=args.profile,
        targets=args.targets,
        k=args.k,
        draws=args.draws,
        samples=args.samples,
        seed=args.seed,
        generator=args.generator,
        progress=not args.quiet,
        refine=args.refine,
        budgets=args.budgets,
        targets_from=args.targets_from,
        target_noise_seed=args.target_noise_seed,
        gradient=args.gradient,
        screen_factor=args.screen_factor,
    )
    if not args.quiet:
        print(res.summary())
    return 0


def _profiles_help() -> str:
    from .profiles import PROFILES  # plain data: no torch for --help

    costs = "; ".join(f"{name}: {p['description']}" for name, p in PROFILES.items())
    return f"settings to start from (default quick), each with what it costs: {costs}"


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="compare methods and inputs on held-out targets: tables and plots (re-running resumes)")
    p.add_argument("--store", required=True, metavar="STORE", help="dataset store (fits on its train split, inverts its test split)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: results.md/.csv/.json, plots, fitted models")
    p.add_argument("--profile", default="quick", metavar="NAME", help=_profiles_help())
    p.add_argument("--methods", default=None, metavar="A,B", help="methods to compare (default: the profile's; prior is always added)")
    p.add_argument("--inputs", default=None, metavar="I,J", help="spectrogram, waveform or both (default: the profile's)")
    p.add_argument("--targets", type=_POSITIVE, default=None, metavar="N", help="targets to invert")
    p.add_argument("--targets-from", default="test", metavar="test|prior",
                   help="test: the store's test split (default); prior: patches drawn from the parameter prior with --seed, "
                   "rendered by the generator, outside the store")
    p.add_argument("--target-noise-seed", type=_NONNEG, default=None, metavar="S",
                   help="render the targets with noise seed S instead of the generator's default (a generator that takes a seed)")
    p.add_argument("--k", type=_POSITIVE, default=None, metavar="K", help="candidates kept per target (best K)")
    p.add_argument("--draws", type=_POSITIVE, default=None, metavar="M", help="draws rendered per target")
    p.add_argument("--samples", type=_count(2), default=None, metavar="S", help="samples per target for diversity and coverage@80")
    p.add_argument("--seed", type=_NONNEG, default=None, help="seed for target choice, draws and bootstrap")
    p.add_argument(
        "--refine",
        type=_NONNEG,
        default=None,
        metavar="R",
        help="also invert every method with R more renders of search through the generator (METHOD+refine rows), "
        "beside two search-only peers at the same budget (default: the profile's, 0 = off)",
    )
    p.add_argument(
        "--budgets",
        type=_budgets,
        default=None,
        metavar="B1,B2,...",
        help="renders per target at which the rows with a search record their best so far: the anytime table and anytime.png "
        "(increasing; default 16,64,256,1024,4096 and draws + refine)",
    )
    p.add_argument(
        "--gradient",
        type=_NONNEG,
        default=0,
        metavar="S",
        help="also a METHOD+refine+gradient row per method: its search ends with S gradient steps through the generator "
        "from its best points, out of the same R renders (a generator with render_torch only)",
    )
    p.add_argument(
        "--screen-factor",
        type=int,
        default=None,
        metavar="F",
        help="the searches' refine option screen_factor: a method that screens proposals (proxy) renders one in F (default 4; 1: no screen)",
    )
    p.add_argument("--generator", default=None, metavar="SPEC", help="generator to re-render with (default: the store's built-in one)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    p.set_defaults(func=_cmd_bench)


# ---------------------------------------------------------------- fit / invert / demo
def _add_fit(sub) -> None:
    from .methods import method_names

    p = sub.add_parser("fit", help="train one method on a store", description="Fit a method on the store's train split and save it as a model file.")
    p.add_argument("--store", required=True, help="a store made by `wavinv generate`")
    p.add_argument("--method", required=True, help=f"one of: {', '.join(method_names())}")
    p.add_argument("--input", choices=INPUTS, default="spectrogram", help="what the model sees (default: spectrogram)")
    p.add_argument("--out", required=True, help="model file to write (.joblib)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyper-parameter of the method's recipe (repeatable)")
    p.add_argument("--seed", type=_NONNEG, default=0, help="random state for validation sampling")
    p.add_argument(
        "--generator",
        default=None,
        metavar="SPEC",
        help="the store's generator (unless built in): renders each parameter's sensitivity, and is needed for spectrograms "
        "when its picture is the generator's own spectrogram function",
    )
    p.add_argument("--scheduler", default=None, metavar="ADDR", help=_SCHEDULER_HELP + " (pca-lgbm and pca-lgbm-quantile)")
    p.add_argument(
        "--render-workers",
        type=_NONNEG,
        default=None,
        metavar="W",
        help="processes rendering clips ahead of the training, for a store without waveforms or --render-clips "
        "(default: half the CPUs; 0: in the training process)",
    )
    p.add_argument(
        "--render-clips",
        type=_POSITIVE,
        default=None,
        metavar="N",
        help="train on the train split of N clips rendered while training: the store's and those `generate --n N` would add "
        "(N >= the store's size; no disk needed for them)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_fit)


def parse_overrides(items: list[str]) -> dict:
    """``["k=v", ...]`` -> ``{"k": v}``, each value parsed as JSON when it is JSON, else kept as text."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_fit(args) -> int:
    from .generators import generator_file
    from .inverter import fit_inverter
    from .methods import method_builder
    from .store import open_store

    method_builder(args.method)  # an unknown name fails here, before any work
    out = Path(args.out)
    check_outputs({"--out": out}, {"store": args.store if "://" not in args.store else None, "generator file": generator_file(args.generator)})
    store = open_store(args.store)
    with _sigterm_as_interrupt():  # a scheduler's kill unwinds as Ctrl-C does: an earlier model file stays as it was
        inv = fit_inverter(
            store,
            args.method,
            args.input,
            overrides=parse_overrides(args.set),
            random_state=args.seed,
            scheduler=args.scheduler,
            progress=not args.quiet,
            generator=args.generator,
            render_workers=args.render_workers,
            render_clips=args.render_clips,
        )
        inv.save(out)  # written beside it, then renamed over it: whole or not at all
    v = inv.validation
    print(f"fitted {args.method} on {args.input} ({inv.store['n_train']} train clips) in {v['fit_s']:.1f} s -> {out}")
    if inv.training:
        print(f"training: {_training_line(inv.training)}")
    if "param_mae" in v:
        print(f"validation ({v['n_val']} clips): param_mae {v['param_mae']:.4f} (centre guess {v['param_mae_centre_guess']:.4f}), coverage@80 {v['coverage@80']:.3f}")
    if "skipped" in v.get("sensitivity", {}):
        print(f"note: each parameter's sensitivity was not measured: {v['sensitivity']['skipped']}")
    return 0


def _add_invert(sub) -> None:
    p = sub.add_parser("invert", help="candidate parameter sets for one target", description="Draw candidates from a model, re-render them, and keep the best K.")
    p.add_argument(
        "--model",
        required=True,
        help="model file from `wavinv fit`: a pickle, whose loading runs code; only load files you made or trust (see --sha256)",
    )
    p.add_argument(
        "--sha256",
        type=_sha256,
        default=None,
        metavar="HEX",
        help="the model file's SHA-256 (`wavinv info MODEL` prints it): a file with another one is refused before it is loaded",
    )
    p.add_argument("--target", required=True, help=".wav, .npy waveform or spectrogram, or .png spectrogram image")
    p.add_argument("--generator", help="generator spec used to re-render (needed unless the model's generator is built in)")
    p.add_argument("--n", type=_POSITIVE, default=8, help="candidates to keep (default 8)")
    p.add_argument("--draws", type=_POSITIVE, default=256, help="candidates to draw and re-render (default 256)")
    p.add_argument(
        "--shortlist",
        type=_POSITIVE,
        default=None,
        metavar="S",
        help="draws given full spectrograms after a first ranking on every 8th frame (default 4 x --n; --shortlist M ranks every draw exactly)",
    )
    p.add_argument(
        "--refine",
        type=_NONNEG,
        default=0,
        metavar="R",
        help="R more renders spent on black-box search through the generator, started from the best draws "
        "(default 0: off; 2048 took about 6 s per target on 2 busy cores with synth100)",
    )
    p.add_argument(
        "--min-distance",
        type=_FRACTION,
        default=None,
        metavar="D",
        help="after --refine, keep candidates at least D apart (mean absolute difference of the parameters on the 0-1 scale; "
        "default 0.03: several answers from one good neighbourhood; 0.1 or more: answers from different neighbourhoods)",
    )
    p.add_argument(
        "--runs",
        type=_POSITIVE,
        default=None,
        metavar="N",
        help="after --refine, start the search from the N best draws (all of them when there are fewer; default: --n); fewer runs search each start longer",
    )
    p.add_argument(
        "--screen-factor",
        type=_POSITIVE,
        default=None,
        metavar="F",
        help="after --refine, a model that screens proposals (proxy) renders one in F of the search's proposals (default 4; 1: no screen)",
    )
    p.add_argument(
        "--gradient",
        type=_NONNEG,
        default=0,
        metavar="S",
        help="after --refine's search, S steps of gradient descent from its 4 best points through the generator, S renders each "
        "out of R (needs a generator with render_torch, a differentiable render, and the model's picture being wavinv's own)",
    )
    p.add_argument(
        "--time-limit",
        type=_SECONDS,
        default=None,
        metavar="S",
        help="seconds the inversion may take: a --refine budget that the render rate measured on the draws cannot fit is refused, "
        "and a search that runs past it stops with an error (nothing written)",
    )
    p.add_argument("--out", required=True, help="JSON file to write (an existing file is replaced, never an input)")
    p.add_argument("--plot", help="PNG of the target beside the best candidates (written together with --out, or neither)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars (the search's renders, the estimator's steps)")
    p.add_argument(
        "--report",
        metavar="PAGE.html",
        help="a self-contained HTML page to listen to: the target and every candidate side by side, each with its spectrogram, "
        "an audio player, lsd_db against the chance level, and its parameters (written together with --out, or neither)",
    )
    p.add_argument("--db-range", **_DB_RANGE)
    p.add_argument("--pad", action="store_true", help="pad or crop a waveform of another length instead of refusing it")
    p.add_argument(
        "--seed",
        type=_NONNEG,
        default=0,
        help="seed of the draws (and of the chance level's random patches): the same model, target and seed give the same candidates (default 0)",
    )
    p.add_argument(
        "--no-chance",
        action="store_true",
        help="skip the chance level (the best of --draws random patches, scored on the shortlist's frames: one more render of --draws clips)",
    )
    p.set_defaults(func=_cmd_invert)


def _refine_options(args) -> dict | None:
    """The search's options the command line sets (``None``: the defaults)."""
    if args.gradient and not args.refine:
        raise InputError(f"--gradient {args.gradient} needs a search to start from: give --refine R (its renders include the gradient's)")
    options = {} if args.min_distance is None else {"min_distance": args.min_distance}
    for flag, key in (("--runs", "runs"), ("--screen-factor", "screen_factor")):
        if getattr(args, key) is not None:
            if not args.refine:
                raise InputError(f"{flag} sets the search: give --refine R too")
            options[key] = getattr(args, key)
    if args.gradient:
        options["gradient"] = args.gradient
    return options or None


def _cmd_invert(args) -> int:
    from .generators import generator_file
    from .inverter import load
    from .limits import require_memory
    from .plots import plot_inversion
    from .targets import load_target

    if args.draws < args.n:
        raise InputError(f"need 1 <= --n <= --draws, got {args.n} and {args.draws}")
    if args.shortlist is not None and args.shortlist < args.n:
        raise InputError(f"--shortlist must keep at least --n={args.n} draws, got {args.shortlist}")
    refine_options = _refine_options(args)
    inputs = {"model": args.model, "target": args.target, "generator file": generator_file(args.generator)}
    check_outputs({"--out": args.out, "--plot": args.plot, "--report": args.report}, inputs)
    inv = load(args.model, sha256=args.sha256)
    trained_on = inv.store.get("path")  # a store is never written into, though invert does not read it
    check_outputs({"--out": args.out, "--plot": args.plot, "--report": args.report}, {"store the model was fitted on": None if "://" in str(trained_on) else trained_on})
    require_memory(inv.memory_needed(args.draws, args.shortlist or 4 * args.n), f"--draws {args.draws}")
    inv.attach(args.generator)
    gen = inv.generator
    db_range = tuple(args.db_range or inv.frontend.get("db_range") or DEFAULT_DB_RANGE)
    target = load_target(args.target, gen["sample_rate"], gen["n_samples"], spec_shape=inv.spec_shape, db_range=db_range, pad=args.pad)
    result = inv.invert(
        target, n=args.n, draws=args.draws, random_state=args.seed, shortlist=args.shortlist, refine=args.refine, time_limit=args.time_limit,
        refine_options=refine_options, progress=not args.quiet,
    )
    if not args.no_chance:
        inv.chance_level(result, random_state=args.seed)
    outputs = [p for p in (args.out, args.plot, args.report) if p]
    with atomic_paths(*outputs) as tmps:  # the JSON, its plot and its page: all or none
        tmps[0].write_text(json.dumps(result.to_json(), indent=2))
        if args.plot:
            plot_inversion(result, tmps[1])
        if args.report:
            _write_report(tmps[-1], result, inv)
    print(candidates_report(result))
    print(f"wrote {', '.join(outputs[:-1])} and {outputs[-1]}" if len(outputs) > 1 else f"wrote {args.out}")
    return 0


def _write_report(path, result, inv, truth=None) -> None:
    """The HTML page of ``result`` (``wavinv.page``), with the model's view of which parameters it learnt when it has one."""
    from .page import Page, inversion_section, write_page

    gen = result.generator
    facts = [
        ("target", result.target.source),
        ("model", f"{result.method} on {inv.input}s, trained on {inv.store.get('n_train', '?')} clips of {inv.store.get('path', '?')}"),
        ("generator", f"{gen.get('name')} v{gen.get('version')}"),
        ("search", f"{result.n_draws} draws ({result.n_unique} distinct), {result.n_renders} renders in all, {result.timing.get('total', 0.0):.1f} s"),
    ]
    floor = inv.floor_level(result, truth) if truth is not None and result.chance else None
    from .sensitivity import most_sensitive_first

    learnt = dict(most_sensitive_first(inv.validation["learnt"])) if inv.validation.get("learnt") else None
    section = inversion_section(result, truth=truth, floor=floor, learnt=learnt)
    page = Page(f"{result.method} on {gen.get('name')}: {len(result.params)} candidates", [section], gen["sample_rate"], gen["n_samples"], result.frontend, facts)
    write_page(path, page)


# the best candidate this much quieter than the target is flagged: lsd_db can prefer "nothing" to "something elsewhere"
QUIET_GAP_DB = 20.0


def candidates_report(result, show: int = 6, indent: str = "") -> str:
    """What ``invert`` and ``demo`` print of an inversion: the candidates, their distances, the chance level, warnings."""
    names = result.space.names
    refined = f", {result.n_renders} renders with refinement" if "refine" in result.timing else ""
    lines = [f"{indent}{len(result.params)} candidates from {result.n_draws} draws ({result.n_unique} distinct{refined}) in {result.timing['total']:.2f} s"]
    for i in range(len(result.params)):
        dist = "  ".join(f"{k} {v[i]:7.3f}" for k, v in result.distances.items())
        shown = ", ".join(f"{n}={v:.4g}" for n, v in zip(names[:show], result.params[i][:show]))
        more = ", ..." if len(names) > show else ""
        lines.append(f"{indent}  #{i + 1:<2d} {dist}   {shown}{more}")
    costs = {k: v for k, v in result.costs().items() if v is not None}
    if costs:
        what = {"render_ms": "render", "score_ms": "search's score", "exact_ms": "exact picture"}
        lines.append(f"{indent}per clip: " + ", ".join(f"{what[k]} {v:.2f} ms" for k, v in costs.items()))
    c = result.chance
    if c:
        lines.append(
            f"{indent}chance level: the best of {c['draws']} random patches is {c['lsd_db']:.3f} dB lsd_db against #1's "
            f"{c['best_lsd_db']:.3f} dB, both on {c['frames']} (lower is closer)"
        )
    gap = result.level_gap_db()
    if gap > QUIET_GAP_DB:
        lines.append(
            f"{indent}warning: the best candidate is {gap:.0f} dB quieter than the target: no draw came close, and lsd_db "
            "prefers near silence to a sound elsewhere; try more --draws, --refine, or a model fitted on more clips"
        )
    return "\n".join(lines)


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole job on the built-in synth, in a few minutes",
        description="Generate a small synth100 store, fit a baseline, invert a held-out sound, and write WAVs, PNGs and JSON.",
    )
    p.add_argument(
        "--out",
        default="demo-output",
        help="folder for everything the demo writes (default: demo-output); re-running resumes, and reuses the model.joblib "
        "there only when demo-model.json records the demo fitting it (its SHA-256): any other is replaced, never loaded",
    )
    p.add_argument("--n", type=_count(DEMO_MIN_N), default=3000, help=f"clips to generate (default 3000, at least {DEMO_MIN_N})")
    p.add_argument("--method", default="pca-lgbm-quantile", help="method to fit (default pca-lgbm-quantile)")
    p.add_argument("--workers", type=_POSITIVE, default=2, metavar="W", help="processes rendering the store (default 2)")
    p.add_argument(
        "--refine",
        type=_NONNEG,
        default=1024,
        metavar="R",
        help="renders of search through the synth per target, started from the best draws (default 1024; 0: off)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


# the smallest store whose hash splits hold 4 test sounds, 1 validation clip and 2 training clips
DEMO_MIN_N = 39
# held-out sounds the demo inverts before showing the clearest one
DEMO_TRIES = 4


def _demo_model(store, path: Path, method: str, progress: bool):
    """The demo's model: the one in ``path`` when the demo recorded fitting it there (``demo-model.json`` beside it:
    its SHA-256, this wavinv, this store, ``method``), else a new fit that replaces it.

    A model file runs code when loaded, so one the demo did not record (put in the folder by
    anyone else, or changed since) is never loaded, only replaced.
    """
    from .errors import ModelError
    from .inverter import fit_inverter, load
    from .modelfile import file_sha256
    from .outputs import atomic_path

    record_path = path.with_name("demo-model.json")
    settings = {"wavinv_version": __version__, "method": method, "input": "spectrogram", "store": store.fingerprint}
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict) and {k: record.get(k) for k in settings} == settings and path.is_file():
        try:
            inv = load(path, sha256=str(record.get("sha256")))  # its bytes are checked before anything is unpickled
            print(f"2/4 reusing {path}: {method} was fitted on this store with these settings (delete it to refit)")
            return inv
        except (ModelError, InputError):
            pass
    unknown = f" ({path.name} there is not the one the demo recorded fitting: replaced, not loaded)" if path.exists() else ""
    print(f"2/4 fitting {method} on spectrograms of the train split{unknown}")
    inv = fit_inverter(store, method, "spectrogram", progress=progress)
    inv.save(path)
    with atomic_path(record_path) as tmp:
        tmp.write_text(json.dumps({**settings, "sha256": file_sha256(path)}, indent=2))
    print(f"    fitted in {inv.validation['fit_s']:.1f} s -> {path}")
    return inv


def _demo_targets(store, ids, k: int = DEMO_TRIES) -> list[int]:
    """Up to ``k`` held-out sounds that suit a demo: from the loudest quarter, those sounding longest first.

    A quiet or very short target often gets near-silent candidates (lsd_db prefers
    "nothing" to "something elsewhere"); the demo is there to show what works.
    """
    import numpy as np

    ids = np.sort(np.asarray(ids))
    waves = store.waveforms()[ids]
    rms_db = 10 * np.log10(np.mean(waves.astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(rms_db >= np.quantile(rms_db, 0.75))
    hop = 256
    frames = waves[loud, : waves.shape[1] // hop * hop].reshape(len(loud), -1, hop).astype(np.float64)
    frame_db = 10 * np.log10(np.mean(frames**2, axis=2) + 1e-20)
    sounding = (frame_db > rms_db[loud, None] - 20).mean(axis=1)  # frames within 20 dB of the clip's mean level
    return [int(ids[loud[j]]) for j in np.argsort(-sounding, kind="stable")[:k]]


def _demo_examples(store, ids, out: Path) -> None:
    """WAVs of some of the synth's sounds, and their spectrograms side by side."""
    from .pictures import store_spectrograms
    from .plots import spectrogram_grid
    from .targets import save_wav

    sr = store.sample_rate
    for i, w in zip(ids, store.waveforms()[ids]):
        save_wav(w, out / f"sound_{i}.wav", sr)
    spectrogram_grid(list(store_spectrograms(store)[ids]), [f"sound {i}" for i in ids], out / "sounds.png", sample_rate=sr, duration=store.n_samples / sr)
    print(f"    wrote {len(ids)} example sounds: {out}/sound_*.wav and their spectrograms {out / 'sounds.png'}")


def _cmd_demo(args) -> int:
    from .methods import method_builder

    method_builder(args.method)  # an unknown method fails here, before anything is written
    out = Path(args.out)
    check_output_dir("--out", out, {})
    with new_folder(out):  # a folder made here is removed again if the demo fails before writing into it
        return _demo_steps(args, out)


def _demo_steps(args, out: Path) -> int:
    from .generate import generate
    from .plots import plot_inversion
    from .targets import Target, save_wav

    t0 = time.perf_counter()
    print(f"1/4 rendering {args.n} synth100 clips into {out / 'store.zarr'} (resumes if interrupted)")
    store = generate(out / "store.zarr", "synth100", n=args.n, seed=0, workers=args.workers, progress=not args.quiet)
    test_ids = store.split_indices("test")
    examples = test_ids[:4]
    _demo_examples(store, examples, out)
    sr = store.sample_rate

    inv = _demo_model(store, out / "model.joblib", args.method, not args.quiet)
    v = inv.validation
    print(f"    validation param_mae {v['param_mae']:.4f} (centre guess {v['param_mae_centre_guess']:.4f}), coverage@80 {v['coverage@80']:.3f}")

    rest = test_ids[len(examples) :]
    tried = _demo_targets(store, rest if len(rest) else test_ids)
    refined = f", then {args.refine} renders of search through the synth" if args.refine else ""
    print(f"3/4 inverting {len(tried)} loud, sustained held-out sounds ({', '.join(map(str, tried))}): 256 draws each, re-rendered and ranked{refined}")
    from tqdm.auto import tqdm

    results = {}
    for i in tqdm(tried, desc="inverting", unit="sound", disable=args.quiet):
        target = Target("waveform", store.waveforms()[i], str(out / "target.wav"))
        results[i] = inv.invert(target, n=8, draws=256, random_state=0, refine=args.refine, progress=not args.quiet)
        inv.chance_level(results[i], random_state=0)
    margin = {i: r.chance["lsd_db"] - r.chance["best_lsd_db"] for i, r in results.items()}
    target_id = max(tried, key=lambda i: margin[i])
    result = results[target_id]
    save_wav(store.waveforms()[target_id], out / "target.wav", sr)
    print(
        f"    showing sound {target_id} ({out / 'target.wav'}), where #1 beats chance most clearly; #1 minus chance in lsd_db: "
        + ", ".join(f"sound {i} {-margin[i]:+.2f} dB" for i in tried)
    )
    print(candidates_report(result, indent="    "))
    truth = store.params()[target_id]
    print("    true parameters: " + ", ".join(f"{n}={v:.4g}" for n, v in zip(result.space.names[:6], truth[:6])) + ", ...")

    print("4/4 writing results")
    waves = result.waveforms[:3]
    names = ["candidates.json", "inversion.png", "report.html"] + [f"candidate_{i + 1}.wav" for i in range(len(waves))]
    with atomic_paths(*(out / name for name in names)) as tmps:  # every result file, or none
        tmps[0].write_text(json.dumps(result.to_json(), indent=2))
        plot_inversion(result, tmps[1])
        _write_report(tmps[2], result, inv, truth=truth)
        for w, tmp in zip(waves, tmps[3:]):
            save_wav(w, tmp, sr)
    print(f"    {out / 'candidates.json'}, {out / 'inversion.png'}, {out / 'report.html'}, {out}/candidate_*.wav")
    print(f"done in {time.perf_counter() - t0:.0f} s. Open {out / 'report.html'} to hear the target beside every candidate.")
    return 0


# ---------------------------------------------------------------- spectrogram / render
def _add_spectrogram(sub) -> None:
    p = sub.add_parser(
        "spectrogram",
        help="the picture of a clip, as a target file (.png or .npy)",
        description="Write the spectrogram wavinv ranks with, or the generator's own spectrogram function's picture "
        "when --generator names a generator that has one: the same picture a store of that generator records.",
    )
    p.add_argument("input", metavar="IN", help="a .wav or a waveform .npy")
    p.add_argument("out", metavar="OUT", help="a .png (8-bit grey, low frequencies at the bottom) or .npy (float32 dB) to write")
    p.add_argument("--generator", default=None, metavar="SPEC", help="use this generator's picture, rate and clip length (default: wavinv's 512x512 STFT of 16,352 samples at 16 kHz)")
    p.add_argument("--db-range", **_DB_RANGE)
    p.add_argument("--pad", action="store_true", help="pad or crop a clip of another length instead of refusing it")
    p.set_defaults(func=_cmd_spectrogram)


def _picture_of(spec: str | None):
    """``(module, sample_rate, n_samples)``: a named generator's picture, or wavinv's default frontend."""
    from .frontend import DEFAULT_N_SAMPLES, DEFAULT_SAMPLE_RATE, Spectrogram

    if spec is None:
        return Spectrogram(), DEFAULT_SAMPLE_RATE, DEFAULT_N_SAMPLES
    from .generators import load_generator
    from .picture import generator_picture

    gen = load_generator(spec)
    return generator_picture(gen), gen.sample_rate, gen.n_samples


def _cmd_spectrogram(args) -> int:
    import numpy as np

    from .frontend import spectrogram
    from .generators import generator_file
    from .outputs import atomic_path
    from .picture import picture_label
    from .targets import load_target, save_spectrogram_png

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise InputError(f"OUT {out} must end in .png or .npy")
    check_outputs({"OUT": out}, {"input": args.input, "generator file": generator_file(args.generator)})
    module, sample_rate, n_samples = _picture_of(args.generator)
    target = load_target(args.input, sample_rate, n_samples, pad=args.pad)
    if target.kind != "waveform":
        raise InputError(f"{args.input} is already a spectrogram: give a .wav or a waveform .npy")
    spec = spectrogram(target.data, module)
    cfg = module.config()
    if out.suffix.lower() == ".png":
        save_spectrogram_png(spec, out, tuple(args.db_range or cfg.get("db_range") or DEFAULT_DB_RANGE))
    else:
        encoded = io.BytesIO()  # written by Python: a failed write says why (numpy's own says only how many bytes)
        np.save(encoded, spec)
        with atomic_path(out) as tmp:
            tmp.write_bytes(encoded.getvalue())
    print(f"wrote {out}: {picture_label(cfg)}")
    return 0


def _add_render(sub) -> None:
    p = sub.add_parser(
        "render",
        help="WAVs (and a picture) of any candidates file",
        description="Render every candidate of a candidates file (`wavinv invert --out`, or a JSON list of "
        "{\"params\": {...}}) with the generator: candidate_RANK.wav each, and candidates.png, their pictures.",
    )
    p.add_argument("candidates", metavar="CANDIDATES.json", help="a candidates file")
    p.add_argument("--generator", required=True, metavar="SPEC", help="the generator the candidates are for")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write into (made if missing; files in it are replaced whole)")
    p.set_defaults(func=_cmd_render)


def _read_candidates(path: Path, space) -> tuple[list[int], np.ndarray, dict]:
    """``(ranks, params (K, P) natural units, the file's generator record)`` of a candidates file."""
    import numpy as np

    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"candidates file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not a readable JSON candidates file ({e})") from None
    cands = doc.get("candidates") if isinstance(doc, dict) else doc
    if not isinstance(cands, list) or not cands or not all(isinstance(c, dict) and isinstance(c.get("params"), dict) for c in cands):
        raise InputError(f'{path}: expected {{"candidates": [{{"params": {{name: value, ...}}}}, ...]}} with at least one candidate')
    recorded = doc.get("generator") if isinstance(doc, dict) and isinstance(doc.get("generator"), dict) else {}
    ranks = [c.get("rank", i + 1) if isinstance(c.get("rank"), int) else i + 1 for i, c in enumerate(cands)]
    try:
        params = np.stack([space.from_dict(c["params"]) for c in cands])
        space.validate(params)
    except (TypeError, ValueError) as e:  # ParamSpaceError is a ValueError
        raise InputError(f"{path}: {e}") from None
    return ranks, params, recorded


def _cmd_render(args) -> int:
    from .frontend import spectrogram
    from .generators import generator_file, load_generator, render_checked
    from .picture import generator_picture, grid_axes
    from .plots import spectrogram_grid
    from .targets import save_wav

    src, out = Path(args.candidates), Path(args.out)
    inputs = {"candidates file": src, "generator file": generator_file(args.generator)}
    check_output_dir("--out", out, inputs)
    if out.is_dir():  # a file of the folder may be one of the inputs
        check_outputs({"--out": out / "candidates.png"}, inputs)
    gen = load_generator(args.generator)
    ranks, params, recorded = _read_candidates(src, gen.space)
    if recorded.get("fingerprint") not in (None, gen.space.fingerprint):
        raise InputError(
            f"{src} holds candidates for generator {recorded.get('name')!r} (space fingerprint {recorded.get('fingerprint')}), "
            f"not {gen.name!r} (space fingerprint {gen.space.fingerprint})"
        )
    waves = render_checked(gen, params)
    module = generator_picture(gen)
    specs = spectrogram(waves, module)
    names = [f"candidate_{r}.wav" for r in ranks] + ["candidates.png"]
    if len(set(names)) != len(names):
        raise InputError(f"{src}: two candidates have the same rank")
    if out.is_dir():
        check_outputs({f"--out ({n})": out / n for n in names}, inputs)
    with new_folder(out), atomic_paths(*(out / n for n in names)) as tmps:  # every file, or none (nor a folder made for them)
        for w, tmp in zip(waves, tmps):
            save_wav(w, tmp, gen.sample_rate)
        spectrogram_grid(
            list(specs),
            [f"#{r}" for r in ranks],
            tmps[-1],
            **grid_axes(module.config(), gen.sample_rate, gen.n_samples),
            suptitle=f"{len(ranks)} candidates rendered by {gen.name} v{gen.version}",
        )
    print(f"wrote {len(ranks)} WAVs ({out}/candidate_*.wav) and their pictures ({out / 'candidates.png'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wavinv", description="Invert parametric audio generators.")
    parser.add_argument("--version", action="version", version=f"wavinv {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_generate(sub)
    _add_verify(sub)
    _add_cache(sub)
    _add_info(sub)
    _add_fit(sub)
    _add_invert(sub)
    _add_bench(sub)
    _add_demo(sub)
    _add_spectrogram(sub)
    _add_render(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a usage error (one line, already printed) or --help/--version
        return int(e.code or 0)
    # warnings (numpy's RuntimeWarnings...) and, unless --verbose, log records wait for the command's end:
    # shown after a success, dropped when it fails, so a failure is exactly one line on stderr
    root, level = logging.getLogger(), logging.getLogger().level
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    held = logging.handlers.MemoryHandler(10_000, flushLevel=logging.CRITICAL + 1, target=stream, flushOnClose=False)
    handler = stream if args.verbose else held
    root.addHandler(handler)
    root.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                code = int(args.func(args) or 0)
            except WavinvError as e:
                return _fail(args.command, str(e), held)
            except MemoryError:
                return _fail(args.command, f"out of memory (this machine has {human_bytes(total_memory())}): ask for less", held)
            except OSError as e:  # the last net: a write or read the checks before the work could not foresee
                where = f" {e.filename}" if getattr(e, "filename", None) else ""
                return _fail(args.command, f"cannot access{where}: {e.strerror or e}", held)
            except KeyboardInterrupt as e:
                held.flush()
                terminated = isinstance(e, _Terminated)
                print(f"wavinv {args.command}: {'terminated (SIGTERM)' if terminated else 'interrupted'}", file=sys.stderr)
                return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
        held.flush()
        for w in caught:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        return code
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler stopping the job) where ``_sigterm_as_interrupt`` turns it into an exception."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While inside, SIGTERM raises ``_Terminated`` (a ``KeyboardInterrupt``) in this process, so the work unwinds
    as after Ctrl-C: temporary files removed, nothing half-written. A process forked meanwhile still dies of it."""
    pid = os.getpid()

    def raise_terminated(signum, frame):
        if os.getpid() != pid:  # a forked worker inherited the handler: end as SIGTERM ends it
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread (main() called from another): SIGTERM keeps its handler
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(command: str, message: str, held: logging.handlers.MemoryHandler) -> int:
    held.buffer.clear()
    print(f"wavinv {command}: error: {' '.join(message.split())}", file=sys.stderr)  # always one line
    return 2


if __name__ == "__main__":
    sys.exit(main())
