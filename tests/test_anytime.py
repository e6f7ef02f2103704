"""The anytime curve: the best lsd_db an inversion reached after each budget of renders, and the bench's table of it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wavinv.bench import bench
from wavinv.cli import main
from wavinv.errors import InputError
from wavinv.generators import render_checked
from wavinv.inverter import SCREEN_FACTOR
from wavinv.limits import budget_list
from wavinv.metrics import lsd_db

ROOT = Path(__file__).resolve().parent.parent
SEARCH_ROWS = ["random-search", "cma-search", "knn+refine"]

BAD_BUDGETS = ["", " ", "64,16", "16,16", "16,x", "16.5", "16,,64", "0,16", "-4,16", "1e3", [], [16, 16], [64, 16], [0], [True], [2.5], 16]


@pytest.mark.parametrize("value", BAD_BUDGETS)
def test_a_bad_budget_list_is_a_typed_error(value):
    with pytest.raises(InputError, match="budgets"):
        budget_list(value)


def test_a_budget_list_reads_text_and_sequences():
    assert budget_list(" 16, 64,256 ") == [16, 64, 256]
    assert budget_list((1,)) == [1] and budget_list(np.array([2, 8])) == [2, 8]


def check_curve(curve, n_renders: int, best: float) -> None:
    """Renders increasing, best so far never rising, the last point the inversion's total and its best candidate."""
    renders, values = [b for b, _ in curve], [v for _, v in curve]
    assert renders == sorted(set(renders)) and renders[-1] == n_renders
    assert all(b >= a for a, b in zip(values[1:], values[:-1]))
    assert values[-1] == best


def test_invert_records_the_best_so_far_in_render_order(toy_inverter):
    inv, target = toy_inverter
    # every draw ranked exactly: the curve below the draws is the best of the first b draws, in sample order
    res = inv.invert(target, n=2, draws=16, shortlist=16, random_state=3, budgets=[1, 4, 16, 64])
    samples = inv.estimator.sample(res.target_spectrogram[None], 16, random_state=3)[0]
    first = lsd_db(res.target_spectrogram, inv.spectrograms(render_checked(inv.attach(), inv.space.from_unit(samples))))
    assert res.anytime[:2] == [(1, pytest.approx(first[:1].min())), (4, pytest.approx(first[:4].min()))]
    check_curve(res.anytime, res.n_renders, res.distances["lsd_db"][0])
    assert res.n_renders == 16 and len(res.anytime) == 3  # 16 and 64 are the total: one point
    assert res.to_json()["anytime"][-1] == {"renders": 16, "lsd_db": res.distances["lsd_db"][0]}
    plain = inv.invert(target, n=2, draws=16, shortlist=16, random_state=3)
    assert plain.anytime == [] and "anytime" not in plain.to_json()


def test_a_search_records_its_curve_and_ranks_each_budgets_best_exactly(toy_inverter):
    inv, target = toy_inverter
    budgets = [2, 8, 24, 60, 120]
    res = inv.invert(target, n=2, draws=16, random_state=0, refine=120, budgets=budgets)
    check_curve(res.anytime, res.n_renders, res.distances["lsd_db"][0])
    assert [b for b, _ in res.anytime] == [b for b in budgets if b < res.n_renders] + [res.n_renders]
    # the draws scored on every 8th frame: the best of the first 2 and 8 joined the exact ranking, so those
    # points are at most the best exact lsd_db of the shortlist's draws rendered by then
    exact = inv.invert(target, n=2, draws=16, shortlist=16, random_state=0, budgets=[2, 8])
    for (b, v), (b2, v2) in zip(res.anytime[:2], exact.anytime[:2]):
        assert b == b2 and v >= v2 - 1e-9
    again = inv.invert(target, n=2, draws=16, random_state=0, refine=120, budgets=budgets)
    assert again.anytime == res.anytime  # same seed, same curve
    with pytest.raises(InputError, match="budgets"):
        inv.invert(target, n=2, draws=16, refine=8, budgets=[8, 2])


@pytest.fixture(scope="module")
def store(profile_store):
    return profile_store


SETTINGS = {"profile": "test", "methods": "knn", "inputs": "spectrogram", "refine": 40, "progress": False}


@pytest.fixture(scope="module")
def run(store, tmp_path_factory):
    return bench(store, tmp_path_factory.mktemp("bench") / "out", budgets="2,8,32,1000", **SETTINGS)


def evals(out: Path, label: str) -> dict:
    return json.loads((out / "evals" / f"{label}-spectrogram.json").read_text())


def test_every_row_with_a_search_records_its_curve_per_target(run):
    for label in SEARCH_ROWS:
        for rec in evals(run.out, label)["targets"].values():
            check_curve(rec["anytime"], rec["n_renders"], rec["lsd_db_best"])
            assert [b for b, _ in rec["anytime"][:-1]] == [b for b in (2, 8, 32, 1000) if b < rec["n_renders"]]
    for label in ("prior", "knn"):  # no search: no curve
        assert all("anytime" not in rec for rec in evals(run.out, label)["targets"].values())


def test_the_anytime_table_plot_and_files(run):
    cells = run.anytime
    assert [(c["method"], c["budget"]) for c in cells] == [(m, b) for m in SEARCH_ROWS for b in (2, 8, 32, 1000)]
    main_table = {r["method"]: r for r in run.rows}
    for c in cells:
        assert c["gap_closed_lo"] <= c["gap_closed"] <= c["gap_closed_hi"]
        assert (c["d_gap_closed"] is None) == (c["method"] == "cma-search")
        if c["budget"] == 1000:  # past every row's renders: the main table's best-of-K, on its scale
            assert c["lsd_db"] == pytest.approx(main_table[c["method"]]["lsd_db_best"])
            assert c["gap_closed"] == pytest.approx(main_table[c["method"]]["gap_closed"])
    by = {(c["method"], c["budget"]): c for c in cells}
    for m in SEARCH_ROWS:
        assert all(by[(m, a)]["lsd_db"] >= by[(m, b)]["lsd_db"] for a, b in ((2, 8), (8, 32), (32, 1000)))
    # the two peers draw the same prior draws first: the same values while within them
    assert by[("random-search", 2)]["lsd_db"] == by[("cma-search", 2)]["lsd_db"]
    md = run.markdown()
    assert "## Anytime: gap closed against renders per target" in md and "](anytime.png)" in md
    assert "| knn+refine − cma-search | spectrogram |" in md and "| cma-search | any |" in md
    with Image.open(run.out / "anytime.png") as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 100
    with open(run.out / "anytime.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(cells) and rows[0]["method"] == "random-search" and float(rows[0]["budget"]) == 2
    saved = json.loads((run.out / "results.json").read_text())
    assert saved["anytime"]["budgets"] == [2, 8, 32, 1000] and len(saved["anytime"]["rows"]) == len(cells)
    assert saved["meta"]["settings"]["budgets"] == [2, 8, 32, 1000] and "--budgets 2,8,32,1000" in run.meta["command"]
    assert f"--screen-factor {SCREEN_FACTOR}" in run.meta["command"] and saved["meta"]["settings"]["screen_factor"] == SCREEN_FACTOR
    assert {"anytime.png", "anytime.csv"} <= set(run.files)


def test_eval_files_without_a_curve_still_load(run, store):
    path = run.out / "evals" / "knn+refine-spectrogram.json"
    ev = json.loads(path.read_text())
    for rec in ev["targets"].values():
        del rec["anytime"]  # as written before curves were recorded
    path.write_text(json.dumps(ev))
    again = bench(store, run.out, budgets="2,8,32,1000", **SETTINGS)
    assert again.evaluated == [] and [r["lsd_db_best"] for r in again.rows] == [r["lsd_db_best"] for r in run.rows]
    assert {c["method"] for c in again.anytime} == {"random-search", "cma-search"}
    assert "delete their evals/ files to record it): knn+refine / spectrogram." in again.markdown()
    # a file from before budgets were part of the key: evaluated again, now with its curve
    ev["key"].pop("budgets")
    path.write_text(json.dumps(ev))
    third = bench(store, run.out, budgets="2,8,32,1000", **SETTINGS)
    assert third.evaluated == ["knn+refine-spectrogram"] and {c["method"] for c in third.anytime} == set(SEARCH_ROWS)


@pytest.mark.parametrize("value", ["", "64,16", "16,16", "16,x", "0,8", "-8", "2.5"])
def test_bad_budgets_are_refused_before_anything_is_written(store, tmp_path, capsys, value):
    with pytest.raises(InputError):
        bench(store, tmp_path / "out", budgets=value, **SETTINGS)
    code = main(["bench", "--store", str(store.path), "--out", str(tmp_path / "o"), "--profile", "test", "--refine", "8", "--budgets", value, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("wavinv bench: error:") and "budgets" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["", "64,16", "16,16", "x", "0"])
def test_run_py_refuses_bad_budgets_in_one_line(tmp_path, value):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--profile", "test", "--store", "s", "--out", "o", "--budgets", value],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--budgets" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
