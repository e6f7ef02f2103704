"""benchmarks/run.py: another generator's store (``--generator`` and ``--n`` build it and re-render with it), and
the committed results, which only ``--publish`` writes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchscripts import ROOT, TOY, script
from wavinv import open_store
from wavinv.generate import generate

run = script("run.py")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--generator", TOY], "--generator needs --store"),
        (["--generator", TOY, "--store", "x", "--n", "0"], "--n must be a positive number of clips, got 0"),
        # bench's own settings, checked before the store would be built
        (["--generator", TOY, "--store", "x", "--n", "64", "--refine", "-5"], "refine must be >= 0, got -5"),
        (["--generator", TOY, "--store", "x", "--n", "64", "--screen-factor", "0"], "screen_factor must be in 1..64, got 0"),
        (["--generator", TOY, "--store", "x", "--n", "64", "--methods", "nope"], "unknown method 'nope'"),
        (["--generator", TOY, "--store", "x", "--n", "64", "--k", "9", "--draws", "4"], "k (candidates kept) must be <= draws"),
        (["--generator", TOY, "--store", "x", "--n", "64", "--methods", "knn", "--set", "knn.bogus=1"], "KNNSampler has no hyper-parameter bogus"),
        (["--generator", TOY, "--store", "x", "--n", "64", "--set", "nodot"], "--set expects METHOD.KEY=VALUE, got 'nodot'"),
        # a hyper-parameter's value, not only its name
        (["--generator", TOY, "--store", "x", "--n", "64", "--methods", "knn", "--set", "knn.n_neighbors=0"], "knn: n_neighbors must be >= 1, got 0"),
        (["--generator", TOY, "--store", "x", "--n", "64", "--methods", "proxy", "--set", "proxy.adapt_rate=-1"], "proxy: adapt_rate must be a number > 0"),
        (["--generator", TOY, "--store", "x", "--n", "64", "--methods", "pca-lgbm-quantile", "--set", "pca-lgbm-quantile.quantiles=[0.5]"],
         "quantiles must be at least two increasing levels"),
    ],
)
def test_bad_generator_settings_are_one_line_exit_2(tmp_path, args, message):
    r = run(*args, "--out", str(tmp_path / "bench"), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def load_run_py():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_full_run_without_publish_writes_nothing_inside_the_committed_results(tmp_path, monkeypatch):
    """The full profile once copied its tables over benchmarks/results/ by default; only --publish writes there."""
    run_py = load_run_py()
    repo = tmp_path / "repo"  # a checkout: run.py works from its root
    results = repo / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "results.md").write_text("the committed table")
    (results / "gallery-1.png").write_bytes(b"a committed figure")
    store = generate(tmp_path / "store", TOY, 16, progress=False)

    def fake_bench(store, out, **kwargs):  # what run.py does with bench's result, without the minutes of a bench
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text("a new table")
        return SimpleNamespace(summary=lambda: "table", fitted=[], evaluated=[], files={"results.md": out / "results.md"})

    monkeypatch.setattr(run_py, "ROOT", repo)
    monkeypatch.setattr(run_py, "bench", fake_bench)
    monkeypatch.chdir(tmp_path)
    committed = files_of(results)
    run_py.main(["--profile", "full", "--store", str(store.location), "-q"])
    assert files_of(results) == committed
    assert (repo / "data" / "bench-full" / "results.md").read_text() == "a new table"

    run_py.main(["--profile", "full", "--store", str(store.location), "--publish", str(results), "-q"])
    assert files_of(results) == {"results.md": hashlib.sha256(b"a new table").hexdigest()}  # published: replaced, old gallery gone


@pytest.mark.parametrize("flag", ["--out", "--store"])
def test_work_files_inside_the_committed_results_are_refused(flag):
    before = files_of(ROOT / "benchmarks" / "results")
    r = run("--profile", "test", flag, "benchmarks/results/work")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "the committed results" in r.stderr, r.stderr
    assert files_of(ROOT / "benchmarks" / "results") == before and not (ROOT / "benchmarks" / "results" / "work").exists()


@pytest.mark.slow
def test_builds_and_benches_a_file_generator_from_another_folder(tmp_path):
    (tmp_path / "gens").mkdir()
    (tmp_path / "gens" / "toygen.py").write_text((ROOT / "tests" / "toygen.py").read_text())
    args = ["--profile", "test", "--generator", "gens/toygen.py:toy", "--n", "48", "--store", "toy-48", "--out", "bench", "--publish", "pub", "-q"]
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    store = open_store(tmp_path / "toy-48")
    assert store.n == 48 and store.generator["spec"] == f"{tmp_path / 'gens' / 'toygen.py'}:toy"
    results = json.loads((tmp_path / "pub" / "results.json").read_text())
    assert {(r["method"], r["input"]) for r in results["rows"]} >= {("prior", "any"), ("knn", "spectrogram")}
    assert results["meta"]["title"] == "wavinv benchmark: toy v1" and (tmp_path / "pub" / "results.md").is_file()

    # the same store named with another generator: refused in one line
    other = run(*args[:3], "gens/toygen.py:other", *args[4:], cwd=tmp_path)
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr


@pytest.mark.slow
def test_a_profile_without_waveforms_builds_a_lean_store_and_benches_it(tmp_path, monkeypatch):
    """The ``search`` profile's kind of store: parameters and cached features only; targets re-rendered."""
    import importlib.util

    from wavinv.profiles import PROFILES

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    run_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_py)
    monkeypatch.setitem(PROFILES["test"], "store", {**PROFILES["test"]["store"], "waveforms": False})
    monkeypatch.chdir(tmp_path)
    store_path, out = tmp_path / "toy-48", tmp_path / "bench"
    run_py.main(["--profile", "test", "--generator", TOY, "--n", "48", "--store", str(store_path), "--out", str(out),
                 "--methods", "knn", "--inputs", "spectrogram", "--refine", "40", "-q"])
    store = open_store(store_path)
    assert store.n == 48 and not store.keeps_waveforms and store.feature_caches()
    rows = {r["method"] for r in json.loads((out / "results.json").read_text())["rows"]}
    assert {"knn", "knn+refine", "cma-search", "random-search"} <= rows
