"""benchmarks/refine_sweep.py: settings side by side on a run's targets, model hyper-parameters included, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchscripts import TOY, script, toy_models

sweep = script("refine_sweep.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A knn model on 96 toy clips, and a results.json naming two of the store's test clips."""
    return toy_models(tmp_path_factory.mktemp("sweep"), 96)


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
    assert res.stderr.startswith("refine_sweep.py: ")


@pytest.mark.parametrize("flag, value, message", [("--targets", "2:0", "selects none"), ("--targets", "a:b", "must be lo:hi"), ("--refine", "-5", "0 or more"),
                                                   ("--draws", "8", "at least 16")])
def test_bad_targets_and_budgets_are_refused_in_one_line(run, flag, value, message):
    argv = args(run, "{}") + ["--draws", "64"]
    argv[argv.index(flag) + 1] = value
    res = sweep(*argv)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_saved_scores_compare_another_run_on_the_same_targets(run, tmp_path):
    saved = tmp_path / "first.npz"
    res = sweep(*args(run, "{}"), "--save", str(saved))
    assert res.returncode == 0 and saved.is_file(), res.stderr
    again = sweep(*args(run, "{}"), "--against", str(saved))
    assert again.returncode == 0, again.stderr
    # the same model and seeds as the saved run: no difference on any target
    assert again.stdout.splitlines()[1] == (f"  minus {saved}: best +0.00 [+0.00, +0.00] dB (wins 0/2); "
                                            "median +0.00 [+0.00, +0.00] dB (wins 0/2)")


def test_saved_scores_are_refused_when_unreadable_of_other_targets_or_an_input(run, tmp_path):
    saved = tmp_path / "first.npz"
    assert sweep(*args(run, "{}"), "--save", str(saved)).returncode == 0
    one_target = args(run, "{}")
    one_target[one_target.index("--targets") + 1] = "0:1"
    other = sweep(*one_target, "--against", str(saved))
    garbled = tmp_path / "garbled.npz"
    garbled.write_bytes(b"not an npz")
    unreadable = sweep(*args(run, "{}"), "--against", str(garbled))
    results = run / "results.json"
    before = results.read_bytes()
    clobber = sweep(*args(run, "{}"), "--save", str(results))
    folder = sweep(*args(run, "{}"), "--save", str(tmp_path))
    nowhere = sweep(*args(run, "{}"), "--save", str(tmp_path / "missing" / "s.npz"))
    scores = saved.read_bytes()
    over_against = sweep(*args(run, "{}"), "--against", str(saved), "--save", str(saved))
    for res, message in ((other, "other targets"), (unreadable, "cannot be read as scores"), (clobber, "is one of the inputs"),
                         (folder, "must be a file in an existing folder"), (nowhere, "must be a file in an existing folder"),
                         (over_against, "is one of the inputs")):
        err = res.stderr.strip()
        assert res.returncode == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert results.read_bytes() == before and saved.read_bytes() == scores
