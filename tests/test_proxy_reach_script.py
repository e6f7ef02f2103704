"""benchmarks/proxy_reach.py: the proxy's answers and the same sound, measured in the proxy's features; its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = f"{ROOT / 'tests' / 'toygen.py'}:toy"


def reach(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "proxy_reach.py"), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny proxy and a knn model on 128 toy clips, and a results.json naming two of the store's test clips."""
    from baselines.proxy import TINY
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter

    tmp = tmp_path_factory.mktemp("reach")
    store = generate(tmp / "store", TOY, n=128, seed=0, progress=False)
    fit_inverter(store, "proxy", "spectrogram", overrides={**TINY, "max_epochs": 5}).save(tmp / "proxy.joblib")
    fit_inverter(store, "knn", "spectrogram", overrides={"n_neighbors": 4, "n_components": 4}).save(tmp / "knn.joblib")
    ids = [int(i) for i in store.ids("test")[:2]]
    (tmp / "results.json").write_text(json.dumps({"meta": {"target_ids": ids}}))
    return tmp


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
