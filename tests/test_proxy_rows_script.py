"""benchmarks/proxy_rows.py: the proxy's held-out error per count of training rows, and its refusals."""

from __future__ import annotations

import math

import pytest

from baselines.proxy import TINY
from benchscripts import script, toy_models

rows_script = script("proxy_rows.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny proxy and a knn model fitted on 128 toy clips."""
    return toy_models(tmp_path_factory.mktemp("rows"), 128, proxy=TINY)


def test_one_line_per_count_of_rows_on_the_same_held_out_rows(run):
    res = rows_script("--model", str(run / "proxy.joblib"), "--rows", "20", "60", "--held-out", "16", "--epochs", "3")
    assert res.returncode == 0, res.stderr
    header, *lines = res.stdout.splitlines()
    assert "3 epochs" in header and "16 rows" in header
    assert [int(line.split()[1]) for line in lines] == [20, 60]
    errors = [float(line.split("held-out error")[1].split()[0]) for line in lines]
    assert all(math.isfinite(e) and e > 0 for e in errors)
    again = rows_script("--model", str(run / "proxy.joblib"), "--rows", "20", "60", "--held-out", "16", "--epochs", "3")
    assert [line.split(" fit ")[0] for line in again.stdout.splitlines()] == [line.split(" fit ")[0] for line in res.stdout.splitlines()]


@pytest.mark.parametrize(
    "model, extra, message",
    [
        ("knn.joblib", ["--rows", "20"], "not a proxy"),
        ("missing.joblib", ["--rows", "20"], "missing.joblib"),
        ("proxy.joblib", ["--rows", "60", "20"], "--rows must increase"),
        ("proxy.joblib", ["--rows", "0"], "--rows must increase"),
        ("proxy.joblib", ["--rows", "100000"], "--rows must increase"),
        ("proxy.joblib", ["--rows", "20", "--held-out", "0"], "--held-out must be"),
        ("proxy.joblib", ["--rows", "20", "--held-out", "98"], "--held-out must be"),
        ("proxy.joblib", ["--rows", "20", "--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_bad_input_is_refused_in_one_line(run, model, extra, message):
    res = rows_script("--model", str(run / model), "--held-out", "16", *extra)
    err = res.stderr.strip()
    assert res.returncode == 2 and message in err and len(err.splitlines()) == 1 and err.startswith("proxy_rows.py: "), err
