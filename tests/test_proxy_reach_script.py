"""benchmarks/proxy_reach.py: the proxy's answers and the same sound, measured in the proxy's features; its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baselines.proxy import TINY
from benchscripts import TOY, script, toy_models

reach = script("proxy_reach.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny proxy and a knn model on 128 toy clips, and a results.json naming two of the store's test clips."""
    return toy_models(tmp_path_factory.mktemp("reach"), 128, proxy={**TINY, "max_epochs": 5})


def args(run: Path, model: str = "proxy.joblib", results: str = "results.json", targets: str = "0:2") -> list[str]:
    return ["--model", str(run / model), "--store", str(run / "store"), "--results", str(run / results), "--targets", targets, "--generator", TOY]


def test_it_prints_the_distances_and_the_same_sound_is_closest(run):
    res = reach(*args(run))
    assert res.returncode == 0, res.stderr
    figures = {line[:30].strip(): float(line[30:].split()[0]) for line in res.stdout.splitlines()[1:]}
    assert set(figures) == {"proxy held-out error", "best candidate, its render", "best candidate, as predicted", "the same sound"}
    # the toy generator has no noise: the same sound is its own render, at distance 0
    assert figures["the same sound"] == 0.0 and figures["best candidate, its render"] >= 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "knn.joblib"}, "not a proxy"),
        ({"results": "missing.json"}, "cannot be read as a bench run's results"),
        ({"targets": "2:0"}, "selects none"),
        ({"targets": "a:b"}, "must be lo:hi"),
    ],
)
def test_bad_input_is_refused_in_one_line(run, change, message):
    res = reach(*args(run, **change))
    assert res.returncode == 2 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_targets_outside_the_stores_test_split_are_refused(run):
    (run / "foreign.json").write_text(json.dumps({"meta": {"target_ids": [10**9]}}))
    res = reach(*args(run, results="foreign.json", targets="0:1"))
    assert res.returncode == 2 and "not in" in res.stderr and len(res.stderr.strip().splitlines()) == 1
