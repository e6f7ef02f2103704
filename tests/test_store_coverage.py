"""benchmarks/store_coverage.py: the nearest store clip to each of a bench run's targets, and its refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from benchscripts import TOY, script
from wavinv.bench import bench
from wavinv.frontend import spectrogram
from wavinv.generate import generate
from wavinv.metrics import lsd_db
from wavinv.pictures import store_picture

coverage = script("store_coverage.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("coverage")
    store = generate(root / "store", TOY, 60, progress=False)
    bench(store, root / "out", generator=TOY, profile="test", methods="prior", inputs="spectrogram", progress=False)
    return store, root / "out"


def test_the_nearest_clip_is_the_smallest_lsd_db_among_the_first_train_clips(run):
    store, out = run
    r = coverage("--bench", str(out), "--generator", TOY, "--sizes", "4,16", "--render-workers", "0", "-q")
    assert r.returncode == 0, r.stderr
    printed = {int(n.replace(",", "")): float(v) for n, v in re.findall(r"^\| ([\d,]+) \| ([\d.]+) \|", r.stdout, re.M)}
    meta = json.loads((out / "results.json").read_text())["meta"]
    ids = np.asarray(meta["target_ids"])
    picture = store_picture(store, TOY)
    targets = spectrogram(np.asarray(store.waveforms()[:])[ids], picture)
    train = spectrogram(np.asarray(store.waveforms("train")[:16]), picture)
    for n in (4, 16):
        expected = np.mean([lsd_db(t, train[:n]).min() for t in targets])
        assert printed[n] == pytest.approx(expected, abs=0.006)
    assert printed[16] <= printed[4]
    assert "prior/any" in r.stdout and "gap closed" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sizes", "16,4"], "--sizes must be increasing positive counts"),
        (["--sizes", "0,4"], "--sizes must be increasing positive counts"),
        (["--sizes", "4,100000"], "train clips, fewer than --sizes' 100000"),
        (["--targets", "0"], "--targets must be at least 1"),
    ],
)
def test_bad_settings_are_one_line_exit_2(run, args, message):
    _, out = run
    r = coverage("--bench", str(out), "--generator", TOY, *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_a_folder_that_is_not_a_finished_run_is_refused(tmp_path):
    r = coverage("--bench", str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is not a finished bench run" in r.stderr
    (tmp_path / "results.json").write_text('{"meta": {}, "rows": []}')
    r = coverage("--bench", str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is not a finished bench run" in r.stderr
    # a run whose store is gone: named, before any work
    run = {"meta": {"target_ids": [1], "store": {"path": str(tmp_path / "gone")}},
           "rows": [{"method": "prior", "input": "any", "lsd_db_best": 9.0}, {"method": "floor", "input": "any", "lsd_db_best": 0.0}]}
    (tmp_path / "results.json").write_text(json.dumps(run))
    r = coverage("--bench", str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "gone: no such store" in r.stderr
