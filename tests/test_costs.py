"""The cost per clip of an inversion: rendering, the picture a search scores on, the exact picture; and the bench's table of it."""

from __future__ import annotations

import csv
import json

import pytest

from wavinv.bench import bench
from wavinv.cli import candidates_report
from wavinv.errors import InputError



def test_a_search_times_every_render_and_every_picture(toy_inverter):
    inv, target = toy_inverter
    res = inv.invert(target, n=2, draws=16, random_state=0, refine=120)
    t = res.timing
    # every clip rendered is counted once, plus the search's kept points rendered again for their exact pictures
    assert t["rendering_n"] >= res.n_renders
    # the shortlist scored every draw, the search every point it tried
    assert t["scoring_n"] >= res.n_renders - 16 and t["exact_n"] >= len(res.params)
    costs = res.costs()
    assert set(costs) == {"render_ms", "score_ms", "exact_ms"} and all(v > 0 for v in costs.values())
    assert costs["render_ms"] == pytest.approx(1000 * t["rendering_s"] / t["rendering_n"])
    doc = res.to_json()
    assert doc["cost_ms"] == {k: round(v, 4) for k, v in costs.items()}
    assert not any(k.endswith("_n") for k in doc["timing_s"])  # counts are not seconds
    assert "per clip: render " in candidates_report(res) and "search's score" in candidates_report(res)


def test_without_a_shortlist_or_search_nothing_is_scored_coarsely(toy_inverter):
    inv, target = toy_inverter
    res = inv.invert(target, n=2, draws=16, shortlist=16, random_state=0)
    costs = res.costs()
    assert costs["score_ms"] is None and costs["render_ms"] > 0 and costs["exact_ms"] > 0
    assert res.timing["rendering_n"] == res.n_renders == res.timing["exact_n"]
    assert json.dumps(res.to_json()["cost_ms"])  # None is written as null
    assert "search's score" not in candidates_report(res)


@pytest.fixture(scope="module")
def store(profile_store):
    return profile_store


@pytest.fixture(scope="module")
def run(store, tmp_path_factory):
    return bench(store, tmp_path_factory.mktemp("bench") / "out", profile="test", methods="knn", inputs="spectrogram", refine=40,
                 progress=False)


def test_the_bench_reports_the_cost_per_clip_of_every_row_that_searched(run):
    rows = {r["method"]: r for r in run.rows}
    for method in ("random-search", "cma-search", "knn+refine"):
        assert rows[method]["render_ms"] > 0 and rows[method]["score_ms"] > 0 and rows[method]["exact_ms"] > 0
    assert rows["floor"]["render_ms"] is None  # the floor is not an inversion
    md = run.markdown()
    section = md.split("## Cost per clip")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    # every row that scored coarsely (a shortlist or a search); not the floor, nor rows that ranked every draw exactly
    assert [line.split(" | ")[0].strip("| ") for line in table] == [r["method"] for r in run.rows if r["score_ms"] is not None]
    assert rows["knn"]["score_ms"] is None and rows["knn"]["render_ms"] > 0  # the test profile's draws are all ranked exactly
    r = rows["knn+refine"]
    assert f"| {r['render_ms']:.2f} | {r['score_ms']:.2f} | {r['exact_ms']:.2f} | {r['score_ms'] / r['render_ms']:.2f} |" in section
    with open(run.out / "results.csv", newline="") as f:
        saved = {row["method"]: row for row in csv.DictReader(f)}
    assert float(saved["knn+refine"]["score_ms"]) == pytest.approx(r["score_ms"], rel=1e-5)
    assert saved["floor"]["render_ms"] == ""


def test_evals_recorded_before_costs_still_load_without_a_cost_table(run, store):
    for path in (run.out / "evals").glob("*.json"):
        if path.name == "floor.json":
            continue
        ev = json.loads(path.read_text())
        for rec in ev.get("targets", {}).values():
            for key in ("render_ms", "score_ms", "exact_ms"):
                rec.pop(key, None)
        path.write_text(json.dumps(ev))
    again = bench(store, run.out, profile="test", methods="knn", inputs="spectrogram", refine=40, progress=False)
    assert again.evaluated == [] and "## Cost per clip" not in again.markdown()
    assert all(r["render_ms"] is None for r in again.rows)


@pytest.mark.parametrize("options, message", [
    ({"bogus": 1}, "unknown refine option bogus"),
    ([("runs", 2)], "refine_options must be a dict"),
    *[({"spread": bad}, "refine option spread must be True, False or a number of rounds") for bad in (0, -3, 2.5, "8", None)],
])
def test_refine_options_that_name_no_setting_are_refused(toy_inverter, options, message):
    inv, target = toy_inverter
    with pytest.raises(InputError, match=message):
        inv.invert(target, n=2, draws=4, random_state=0, refine=64, refine_options=options)
