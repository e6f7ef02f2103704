"""The benchmark harness end to end on a tiny store: tables, plots, resuming, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wavinv import __version__
from wavinv.bench import CSV_COLUMNS, METRICS, bench, bootstrap_ci, get_profile
from wavinv.bench.table import COST_KEYS
from wavinv.cli import main
from wavinv.errors import InputError, StoreError
from wavinv.generate import generate

PROFILE = get_profile("test")
PAIRS = [("prior", "any")] + [(m, i) for m in PROFILE["methods"] if m != "prior" for i in PROFILE["inputs"]]
# every table ends with the same-sound floor (for synth100: another noise seed, wavinv.floor's probe decides)
ROWS = PAIRS + [("floor", "any")]


@pytest.fixture(scope="module")
def store(profile_store):
    return profile_store


@pytest.fixture(scope="module")
def run(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    return bench(store, out, profile="test", progress=False)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table_has_every_column_the_prior_row_and_finite_numbers(run):
    rows = read_csv(run.out / "results.csv")
    assert list(rows[0]) == CSV_COLUMNS
    assert [(r["method"], r["input"]) for r in rows] == ROWS
    for r in rows:
        # the floor is one re-rendered clip per target: it has distances, no samples
        no_samples = {c for key in METRICS if not key.startswith(("lsd_db", "mrstft")) for c in (key, f"{key}_lo", f"{key}_hi")}
        for c in CSV_COLUMNS[2:]:
            if r["method"] == "floor" and c in no_samples:
                assert r[c] == "", (c, r[c])
            elif c in COST_KEYS:  # what a row never did is empty: the floor's inversions, a coarse score without a shortlist
                assert r[c] == "" or float(r[c]) > 0, (r["method"], c, r[c])
            else:
                assert math.isfinite(float(r[c])), (r["method"], c, r[c])
        for key in METRICS:
            if r["method"] != "floor" or key not in no_samples:
                assert float(r[f"{key}_lo"]) <= float(r[key]) <= float(r[f"{key}_hi"])
        assert int(r["n_targets"]) == PROFILE["targets"]
    # chance closes none of the gap and the same sound all of it, by definition
    assert float(rows[0]["gap_closed"]) == 0.0 and float(rows[-1]["gap_closed"]) == pytest.approx(1.0)
    # the paired difference of the best row with itself is exactly zero
    assert min(float(r["d_lsd_db_best"]) for r in rows if r["method"] != "floor") == 0.0
    md = run.markdown()
    for header, _, _ in METRICS.values():
        assert header in md
    for text in ("prior (chance)", run.meta["store"]["fingerprint"], run.meta["command"], f"| wavinv | {__version__}", "cores", "fit (s)", "model (MB)"):
        assert text in md
    assert md.count("\n| prior") + md.count("\n| knn") == len(PAIRS)
    assert "| floor (same sound) |" in md and "gap closed" in md
    meta = json.loads((run.out / "results.json").read_text())["meta"]
    assert meta["settings"]["k"] == PROFILE["k"] and meta["machine"]["cores"] >= 1
    assert len(meta["target_ids"]) == PROFILE["targets"]


def test_a_flow_trained_net_gets_a_latent_noise_row_from_the_same_fit(store, tmp_path):
    from wavinv.baselines.conv1d import TINY

    res = bench(store, tmp_path / "o", methods="conv1d", inputs="waveform", profile="test", overrides={"conv1d": TINY}, progress=False)
    assert [(r["method"], r["input"]) for r in res.rows] == [("prior", "any"), ("conv1d", "waveform"), ("conv1d+latent-noise", "waveform"), ("floor", "any")]
    assert res.fitted == ["prior-waveform", "conv1d-waveform"]  # one training for both sampling rows
    flow, latent = res.rows[1], res.rows[2]
    assert flow["fit_s"] == latent["fit_s"] and flow["diversity"] != latent["diversity"]
    assert (tmp_path / "o" / "evals" / "conv1d+latent-noise-waveform.json").is_file()


def test_refine_rows_come_from_the_same_fits_and_never_lose(run, store):
    # the same store, settings and out folder: the plain rows and their fits are reused
    res = bench(store, run.out, methods="knn", inputs="spectrogram", profile="test", refine=64, progress=False)
    labels = [r["method"] for r in res.rows]
    assert labels == ["prior", "random-search", "cma-search", "knn", "knn+refine", "floor"]
    assert res.fitted == []
    by = {r["method"]: r for r in res.rows}
    # refinement starts from the same draws and keeps them in the ranking: per target it can only gain
    ev = {name: json.loads((run.out / "evals" / f"{name}-spectrogram.json").read_text())["targets"] for name in ("knn", "knn+refine", "cma-search", "prior")}
    for a, b in (("knn+refine", "knn"), ("cma-search", "prior")):
        for row, rec in ev[a].items():
            assert rec["lsd_db_best"] <= ev[b][row]["lsd_db_best"] + 1e-9
            assert rec["lsd_db_median"] <= ev[b][row]["lsd_db_median"] + 1e-9
            assert rec["n_renders"] > ev[b][row]["n_renders"]
    # the peers spend what the refined rows spend: draws + refine renders
    assert by["random-search"]["renders"] == PROFILE["draws"] + 64
    assert "--refine 64" in res.meta["command"]


def test_targets_are_test_split_clips(run, store):
    assert set(run.meta["target_ids"]) <= set(store.split_indices("test").tolist())


def test_plots_are_valid_pngs(run):
    names = ["lsd_db.png", "quality_vs_cost.png"] + [f"gallery-{j + 1}.png" for j in range(PROFILE["gallery"])]
    for name in names:
        with Image.open(run.out / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
        assert f"]({name})" in run.markdown()


def test_the_report_page_plays_each_gallery_target_beside_every_rows_best(run, store):
    page = (run.out / "report.html").read_text()
    assert "](report.html)" in run.markdown() and run.files["report.html"] == run.out / "report.html"
    # every row of the folder's last table (a later test may add search rows there), the floor aside: it is
    # a line of the scale, not a clip
    n_rows = sum(not r["method"].startswith("floor") for r in read_csv(run.out / "results.csv"))
    assert n_rows >= len(PAIRS)
    assert page.count("<audio") == PROFILE["gallery"] * (1 + n_rows)
    assert page.count("floor: the true parameters re-rendered") == PROFILE["gallery"] and "prior (chance)" in page
    assert all(f"test id {row}" in page for row in run.meta["target_ids"][: PROFILE["gallery"]])


def test_interrupted_evaluation_resumes_with_the_same_numbers(run, store):
    ev_path = run.out / "evals" / "knn-waveform.json"
    ev = json.loads(ev_path.read_text())
    ev["targets"] = dict(list(ev["targets"].items())[:1])  # as if stopped after the first target
    ev_path.write_text(json.dumps(ev))
    again = bench(store, run.out, profile="test", progress=False)
    assert again.fitted == [] and again.evaluated == ["knn-waveform"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "invert_s" and k not in COST_KEYS} for r in rows]  # noqa: E731  (timings)
    assert strip(again.rows) == strip(run.rows)


def test_rerun_reuses_fits_and_results(run, store, capsys):
    models = sorted((run.out / "models").glob("*.joblib"))
    assert len(models) == len(PAIRS)
    before = {p: p.stat().st_mtime_ns for p in models}
    table = (run.out / "results.csv").read_bytes()
    assert main(["bench", "--store", str(store.path), "--out", str(run.out), "--profile", "test"]) == 0
    out = capsys.readouterr().out
    assert "prior" in out and "floor" in out and f"(0 fitted, {len(PAIRS)} reused, 0 evaluated" in out
    assert {p: p.stat().st_mtime_ns for p in models} == before
    assert (run.out / "results.csv").read_bytes() == table  # timings are stored too: the same bytes


def test_a_changed_default_refits_that_method_only(run, store, tmp_path, monkeypatch):
    import shutil

    import wavinv.baselines.knn as knn_recipe

    out = tmp_path / "out"
    shutil.copytree(run.out, out)
    monkeypatch.setattr(knn_recipe, "DEFAULTS", {**knn_recipe.DEFAULTS, "weights": "distance"})
    again = bench(store, out, profile="test", progress=False)
    knn = sorted(f"knn-{i}" for m, i in PAIRS if m == "knn")
    assert sorted(again.fitted) == knn and sorted(again.evaluated) == knn  # a knn fitted as before is not what knn is now


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"methods": "prior,nope"}, InputError),
        ({"inputs": "spectrogram,mel"}, InputError),
        ({"inputs": "spectrogram,"}, InputError),
        ({"k": 9, "draws": 4}, InputError),
        ({"targets": 0}, InputError),
        ({"profile": "huge"}, InputError),
        ({"overrides": {"knn": {"no_such_parameter": 1}}}, InputError),
        ({"refine": -1}, InputError),
        ({"refine": 2.5}, InputError),
    ],
)
def test_bad_settings_are_typed_errors(store, tmp_path, kwargs, error):
    with pytest.raises(error):
        bench(store, tmp_path / "out", **{"profile": "test", "progress": False, **kwargs})
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_missing_store(tmp_path):
    with pytest.raises(StoreError):
        bench(tmp_path / "nothing", tmp_path / "out", profile="test", progress=False)


@pytest.mark.parametrize(
    "extra",
    [["--methods", "knn,unknown"], ["--inputs", "png"], ["--k", "0"], ["--refine", "-5"], ["--refine", "8", "--screen-factor", "0"],
     ["--refine", "8", "--screen-factor", "65"]],
)
def test_cli_bad_input_is_one_line_and_exit_2(store, tmp_path, capsys, extra):
    code = main(["bench", "--store", str(store.path), "--out", str(tmp_path / "o"), "--profile", "test", "-q", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("wavinv bench: error:") and err.count("\n") == 1


def test_cli_missing_store(tmp_path, capsys):
    assert main(["bench", "--store", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--profile", "test", "-q"]) == 2
    assert "no such store" in capsys.readouterr().err


def test_a_user_generator_must_be_named(tmp_path):
    # the store records a file spec: importing it runs code, so bench never does that by itself
    spec = f"{Path(__file__).parent / 'toygen.py'}:toy"
    toy = generate(tmp_path / "toy", spec, 60, progress=False)
    settings = {"profile": "test", "methods": "prior", "inputs": "waveform", "progress": False}
    with pytest.raises(StoreError, match="--generator"):
        bench(toy, tmp_path / "out", **settings)
    res = bench(toy, tmp_path / "out", generator=spec, **settings)
    assert [r["method"] for r in res.rows] == ["prior", "floor"] and math.isfinite(res.rows[0]["lsd_db_best"])
    assert f"--generator {spec}" in res.meta["command"]


def test_bootstrap_ci():
    assert bootstrap_ci(np.full(10, 3.0)) == (3.0, 3.0, 3.0)
    x = np.random.default_rng(0).normal(5.0, 1.0, 200)
    mean, lo, hi = bootstrap_ci(x)
    assert lo < mean < hi and mean == pytest.approx(x.mean())
    # about +-1.96 standard errors
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / np.sqrt(len(x)), rel=0.2)
    assert bootstrap_ci(x) == (mean, lo, hi)  # fixed seed: the same interval every time
    with pytest.raises(InputError):
        bootstrap_ci([])


def test_a_screening_methods_search_results_are_keyed_by_the_screen_factor():
    from wavinv.bench.cache import make_eval_key
    from wavinv.bench.settings import Entry, make_settings
    from wavinv.inverter import SCREEN_FACTOR

    def key(method: str, refine: int, **kw) -> dict:
        s = make_settings("search", ["proxy", "prior"], ["spectrogram"], 4, 16, 64, 64, 0, 0, [], refine=512, **kw)
        return make_eval_key({"method": method}, s, Entry(method, method, "spectrogram", refine=refine))

    assert key("proxy", 512)["search"]["screen_factor"] == SCREEN_FACTOR  # its search renders what its proxy picks
    assert key("proxy", 512, screen_factor=1)["search"]["screen_factor"] == 1  # another factor: evaluated again
    assert "screen_factor" not in key("prior", 512, screen_factor=1)["search"]  # nothing to screen with: its results stand
    assert "search" not in key("proxy", 0)
    with pytest.raises(InputError, match="screen_factor"):
        key("proxy", 512, screen_factor=0)
