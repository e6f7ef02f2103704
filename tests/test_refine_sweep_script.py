"""benchmarks/refine_sweep.py: settings side by side on a run's targets, model hyper-parameters included, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = f"{ROOT / 'tests' / 'toygen.py'}:toy"


def sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "refine_sweep.py"), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A knn model on 96 toy clips, and a results.json naming two of the store's test clips."""
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter

    tmp = tmp_path_factory.mktemp("sweep")
    store = generate(tmp / "store", TOY, n=96, seed=0, progress=False)
    fit_inverter(store, "knn", "spectrogram", overrides={"n_neighbors": 4, "n_components": 4}).save(tmp / "knn.joblib")
    ids = [int(i) for i in store.ids("test")[:2]]
    (tmp / "results.json").write_text(json.dumps({"meta": {"target_ids": ids}}))
    return tmp


def args(run: Path, *settings: str, results: str | None = None) -> list[str]:
    return ["--model", str(run / "knn.joblib"), "--store", str(run / "store"), "--results", results or str(run / "results.json"),
            "--targets", "0:2", "--refine", "0", "--generator", TOY, *settings]


def test_a_setting_sets_the_models_hyper_parameters(run):
    res = sweep(*args(run, '{"estimator": {"n_neighbors": 2}}', "{}"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith('{"estimator": {"n_neighbors": 2}}') and "targets=2 best" in lines[0]
    # the second setting is compared with the first, target by target
    assert lines[2].startswith("  minus the first setting: best ") and "(wins " in lines[2] and "/2)" in lines[2]
    same = sweep(*args(run, "{}", "{}"), "--draws", "32")
    assert same.returncode == 0 and "draws=32 R=0" in same.stdout, same.stderr
    # a setting against itself: the same seeds, so no difference on any target and no wins
    assert same.stdout.splitlines()[2] == ("  minus the first setting: best +0.00 [+0.00, +0.00] dB (wins 0/2); "
                                           "median +0.00 [+0.00, +0.00] dB (wins 0/2)")


@pytest.mark.parametrize(
    "setting, results, message",
    [
        ("{nope", None, "is not JSON"),
        ("[1, 2]", None, "must be a JSON object"),
        ('{"estimator": 3}', None, "must be a JSON object"),
        ('{"estimator": {"n_neighbours": 2}}', None, "has no hyper-parameter n_neighbours"),
        ("{}", "missing.json", "cannot be read as a bench run's results"),
        ('{"bogus": 1}', None, "unknown refine option bogus"),
    ],
)
def test_bad_settings_are_refused_in_one_line(run, setting, results, message):
    res = sweep(*args(run, setting, results=None if results is None else str(run / results)))
    assert res.returncode == 2 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize("flag, value, message", [("--targets", "2:0", "selects none"), ("--targets", "a:b", "must be lo:hi"), ("--refine", "-5", "0 or more"),
                                                   ("--draws", "8", "at least 16")])
def test_bad_targets_and_budgets_are_refused_in_one_line(run, flag, value, message):
    argv = args(run, "{}") + ["--draws", "64"]
    argv[argv.index(flag) + 1] = value
    res = sweep(*argv)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1
