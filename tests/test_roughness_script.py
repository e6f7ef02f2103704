"""benchmarks/roughness.py: lsd_db from the true parameters moved by each step, and its refusals."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from benchscripts import ROOT, TOY, script

roughness = script("roughness.py")

sys.path.insert(0, str(ROOT / "benchmarks"))
from roughness import moved  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from wavinv.generate import generate

    path = tmp_path_factory.mktemp("rough") / "store"
    generate(path, TOY, n=64, seed=0, progress=False)
    return path


def test_a_move_keeps_its_size_and_stays_in_the_box():
    unit = np.array([[0.0, 0.5, 1.0, 0.999]])
    out = moved(unit, 0.01, np.random.default_rng(0))
    assert np.allclose(np.abs(out - unit), 0.01) and (out >= 0).all() and (out <= 1).all()


def test_the_distance_grows_with_the_step(store):
    res = roughness("--store", str(store), "--generator", TOY, "--targets", "4", "--steps", "1e-6,0.3")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("toy: 4 targets")
    medians = {line.split()[1]: float(line.split()[2]) for line in lines[2:] if line.split()[0] == "step"}
    assert set(medians) == {"1e-06", "0.3"} and medians["1e-06"] < medians["0.3"]


@pytest.mark.parametrize("flag, value, message", [("--steps", "0", "steps must be in (0, 0.5]"), ("--steps", "a,b", "not a comma-separated list"),
                                                   ("--targets", "0", "at least 1"), ("--seed", "-1", "0 or more")])
def test_bad_input_is_refused_in_one_line(store, flag, value, message):
    res = roughness("--store", str(store), "--generator", TOY, flag, value)
    assert res.returncode == 2 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize("name", ["none", "a-file", "."])
def test_what_is_no_store_is_refused_in_one_line(tmp_path, name):
    (tmp_path / "a-file").write_text("not a store")
    res = roughness("--store", str(tmp_path / name), "--generator", TOY)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert (tmp_path / "a-file").read_text() == "not a store"


def test_more_targets_than_the_test_split_take_the_whole_split_in_batches(store):
    from wavinv import open_store

    n_test = len(open_store(store).ids("test"))
    res = roughness("--store", str(store), "--generator", TOY, "--targets", "1000000", "--steps", "0.1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"toy: {n_test} targets")
