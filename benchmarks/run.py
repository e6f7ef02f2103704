"""Build the profile's store if it is missing, then run the benchmark and print its table.

    python benchmarks/run.py --profile quick    # minutes on 2 cores: a smoke run
    python benchmarks/run.py --profile full --publish benchmarks/results    # the committed results
    python benchmarks/run.py --profile full --methods spec-cnn --inputs spectrogram \
        --set spec-cnn.max_time=1800 --out data/bench-spec-cnn-30min --publish benchmarks/results/spec-cnn-30min
    python benchmarks/run.py --profile full --generator examples/torchsynth_voice.py:voice --n 10000 \
        --store data/torchsynth-10k --methods knn --inputs spectrogram --out data/bench-torchsynth

Profiles are the plain dicts in ``wavinv.bench.PROFILES`` (store size and seed,
methods, inputs, targets, K, draws, per-method hyper-parameters); the command
line can change the number of targets and where they come from (``--targets-from``,
``--target-noise-seed``), K, draws, the search's renders and the
budgets of the anytime table, and ``--generator`` (with
``--n``) builds and benchmarks another generator's store. Work files (store, fitted
models, per-target results) go under ``data/`` and are reused: re-running the
same command resumes an interrupted run. ``--publish DIR`` copies the tables and
plots there; without it nothing is written inside ``benchmarks/results/`` (the
committed results), and a work folder or store inside it is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from wavinv import open_store
from wavinv.bench import PROFILES, bench, get_profile
from wavinv.bench.settings import make_entries, make_settings
from wavinv.bench.targets import require_seed, target_options
from wavinv.cli import parse_overrides
from wavinv.errors import InputError, WavinvError
from wavinv.generate import generate
from wavinv.generators import generator_file, load_generator, portable_spec
from wavinv.limits import budget_list
from wavinv.store import is_store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path("benchmarks") / "results"  # the committed results: written only by --publish


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    ap.add_argument("--store", type=Path, default=None, help="store to use or build (default: the profile's, under data/)")
    ap.add_argument("--generator", default=None, help="generator spec of the store, to build it and to re-render (default: the profile's)")
    ap.add_argument("--n", type=int, default=None, help="clips in a store built here (default: the profile's)")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default data/bench-PROFILE)")
    ap.add_argument("--publish", type=Path, default=None, help="copy tables and plots here (default: nowhere; the committed results are benchmarks/results/)")
    ap.add_argument("--methods", default=None, help="comma-separated subset (default: the profile's)")
    ap.add_argument("--inputs", default=None, help="comma-separated subset of spectrogram,waveform (default: the profile's)")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE", help="a hyper-parameter of one method (JSON value), e.g. conv1d.max_time=1800")
    ap.add_argument("--targets", type=int, default=None)
    ap.add_argument("--targets-from", default="test", metavar="test|prior",
                    help="test: the store's test split (default); prior: patches drawn from the parameter prior with the bench seed, outside the store")
    ap.add_argument("--target-noise-seed", type=int, default=None, metavar="S",
                    help="render the targets with noise seed S instead of the generator's default (a generator that takes a seed)")
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--refine", type=int, default=None, help="renders of search per target: METHOD+refine rows and the search peers (default: the profile's)")
    ap.add_argument("--gradient", type=int, default=0, metavar="S",
                    help="also METHOD+refine+gradient rows: the search ends with S gradient steps through the generator (render_torch), out of --refine")
    ap.add_argument("--screen-factor", type=int, default=None, metavar="F",
                    help="the searches' refine option screen_factor: a method that screens proposals (proxy) renders one in F (default 4; 1: no screen)")
    ap.add_argument("--budgets", default=None, metavar="B1,B2,...",
                    help="renders per target at which the rows with a search record their best so far, for the anytime table "
                    "(increasing; default 16,64,256,1024,4096 and draws + refine)")
    ap.add_argument("--workers", type=int, default=1, help="processes rendering the store")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    prof = get_profile(args.profile)
    spec = dict(prof["store"])
    if args.generator is not None:
        if args.store is None:
            fail("--generator needs --store: the profile's store is another generator's")
        spec["generator"] = args.generator
    overrides = parse_sets(args.set)
    try:  # checked before a store is built or anything written: bench checks the same settings again
        budgets = None if args.budgets is None else budget_list(args.budgets, "--budgets")
        targets_from, noise_seed = target_options(args.targets_from, args.target_noise_seed)
        if noise_seed is not None:
            require_seed(load_generator(spec["generator"]), noise_seed)
        make_entries(make_settings(args.profile, args.methods, args.inputs, args.targets, args.k, args.draws, None, None, None, overrides,
                                   args.refine, budgets, targets_from, noise_seed, args.gradient, args.screen_factor))
    except WavinvError as e:
        fail(str(e))
    if args.n is not None:
        if args.n < 1:
            fail(f"--n must be a positive number of clips, got {args.n}")
        spec["n"] = args.n
    # paths given here stay as given; defaults (and the tables) are relative to the repository
    store_path, out, publish = (p.resolve() if p else None for p in (args.store, args.out, args.publish))
    if generator_file(spec["generator"]) is not None:  # a file spec, like the paths, as given from here
        spec["generator"] = args.generator = portable_spec(spec["generator"])[0]
    os.chdir(ROOT)
    store_path = store_path or Path(spec["path"])
    out = out or Path("data") / f"bench-{args.profile}"
    for flag, path in (("--store", store_path), ("--out", out)):
        if (ROOT / RESULTS).resolve() in (path.resolve(), *path.resolve().parents):
            fail(f"{flag} {path} is inside {RESULTS}/, the committed results: work files go elsewhere (--publish copies the tables there)")

    t0, c0 = time.perf_counter(), time.process_time()
    if is_store(store_path) and open_store(store_path).is_complete:
        store = open_store(store_path)
        print(f"store: {store_path} exists ({store.n} clips)")
    else:
        # generate resumes a partial store and makes the same bytes either way
        store = generate(store_path, spec["generator"], spec["n"], seed=spec["seed"], workers=args.workers, progress=not args.quiet,
                         waveforms=spec.get("waveforms", True))
        print(f"store: built {store_path} ({store.n} clips of {spec['generator']}) in {time.perf_counter() - t0:.1f} s")
    t1 = time.perf_counter()
    res = bench(
        store,
        out,
        methods=args.methods,
        inputs=args.inputs,
        profile=args.profile,
        overrides=overrides,
        targets=args.targets,
        k=args.k,
        draws=args.draws,
        refine=args.refine,
        gradient=args.gradient,
        screen_factor=args.screen_factor,
        budgets=budgets,
        targets_from=targets_from,
        target_noise_seed=noise_seed,
        generator=args.generator,
        command=command,
        progress=not args.quiet,
    )
    print(res.summary())
    cpu = time.process_time() - c0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench: {time.perf_counter() - t1:.1f} s; total {time.perf_counter() - t0:.1f} s wall, {cpu:.0f} s CPU in this process; load average {load}")
    for name in dict.fromkeys(res.fitted + res.evaluated):
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in _costs(out, name).items()))
    if publish is not None:
        publish.mkdir(parents=True, exist_ok=True)
        for old in [*publish.glob("gallery-*.png"), *publish.glob("anytime.*"), *publish.glob("learnt.csv")]:  # an earlier run may have had more
            old.unlink()
        for path in res.files.values():
            shutil.copy2(path, publish / path.name)
        print(f"published {len(res.files)} files to {publish}")


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"run.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_sets(items: list[str]) -> dict[str, dict]:
    """``["conv1d.max_time=1800"]`` -> ``{"conv1d": {"max_time": 1800}}`` (values as ``wavinv fit --set``)."""
    out: dict[str, dict] = {}
    for item in items:
        method, dot, setting = item.partition(".")
        if not (dot and method and "=" in setting):
            fail(f"--set expects METHOD.KEY=VALUE, got {item!r}")
        try:
            out.setdefault(method, {}).update(parse_overrides([setting]))
        except InputError as e:
            fail(f"--set {item!r}: {e}")
    return out


def _costs(out: Path, name: str) -> dict[str, str]:
    """Fit time and total invert time of one row, read back from the work files."""
    ev = json.loads((out / "evals" / f"{name}.json").read_text())
    # "METHOD+SAMPLER-INPUT" and the search peers use the model fitted for another row
    model_name = ev.get("model_name") or (f"{name.split('+')[0]}-{name.rsplit('-', 1)[1]}" if "+" in name else name)  # files of earlier versions
    model = json.loads((out / "models" / f"{model_name}.json").read_text())
    inv = [t["invert_s"] for t in ev["targets"].values()]
    return {"fit": f"{model['fit_wall_s']:.1f} s", "invert": f"{sum(inv):.1f} s for {len(inv)} targets", "model": f"{model['model_mb']:.2f} MB"}


if __name__ == "__main__":
    try:
        main()
    except WavinvError as e:  # a store of another generator, a bad setting...: one line, exit 2
        fail(str(e))
