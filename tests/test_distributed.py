"""Dask scale-out: generation byte-identical to a local run, interruption and resume, the LightGBM fits.

One ``LocalCluster`` (2 worker processes, one thread each) serves the module;
tests reach it by its address, as a user reaches a real cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("lightgbm.dask")

import wavinv.cluster as wc  # noqa: E402
from wavinv import InputError, RenderError, open_store  # noqa: E402
from wavinv.cli import main  # noqa: E402
from wavinv.generate import generate  # noqa: E402
from wavinv.inverter import fit_inverter, load  # noqa: E402
from wavinv.metrics import coverage, param_mae  # noqa: E402
from wavinv.models.lgbm import PCALGBMQuantile, PCALGBMRegressor  # noqa: E402
from wavinv.pictures import store_spectrograms  # noqa: E402
from wavinv.verify import verify  # noqa: E402

import toygen  # noqa: E402  tests/toygen.py

HERE = Path(__file__).parent
N, SEED, CHUNK = 70, 3, 8  # 9 chunks, the last one partial


def spec(name: str) -> str:
    return f"{HERE / 'toygen.py'}:{name}"


def array_tree(path: Path) -> dict[str, str]:
    """sha256 of every file but the group's zarr.json (it records the creation time)."""
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.rglob("*")) if f.is_file() and f != path / "zarr.json"}


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    # Dask's defaults (as on a user's cluster), but no dashboard and the HTTP server on a free port
    options = dict(dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.ERROR)
    before = dict(os.environ)
    c = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, **options)
    # the nanny writes its worker settings into os.environ: later tests' subprocesses must not inherit them
    os.environ.clear()
    os.environ.update(before)
    with c, Client(c) as client:
        yield c, client


@pytest.fixture(scope="module")
def address(cluster) -> str:
    return cluster[0].scheduler_address


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "store"
    generate(out, spec("toy"), N, seed=SEED, chunk=CHUNK, progress=False)
    return out


# -- scheduler specs and set-up errors (no cluster) -------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [("local:3", ("local", 3)), (" local:1 ", ("local", 1)), ("tcp://10.0.0.5:8786", ("address", "tcp://10.0.0.5:8786")), ("node7:8786", ("address", "node7:8786"))],
)
def test_scheduler_specs(text, expected):
    assert wc.parse_scheduler(text) == expected


def test_local_means_one_worker_per_core():
    assert wc.parse_scheduler("local") == ("local", len(os.sched_getaffinity(0)))


@pytest.mark.parametrize("text", ["local:0", "local:x", "", "http://host:8786", "node7", "missing.json"])
def test_bad_scheduler_specs(text):
    with pytest.raises(InputError, match="scheduler"):
        wc.parse_scheduler(text)


def test_missing_dask_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(InputError, match=r"pip install 'wavinv\[dask\]'"):
        generate(tmp_path / "s", spec("toy"), 10, scheduler="local:2", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_scheduler(tmp_path, monkeypatch):
    monkeypatch.setattr(wc, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InputError, match="cannot reach the Dask scheduler tcp://127.0.0.1:9"):
        generate(tmp_path / "s", spec("toy"), 10, scheduler="tcp://127.0.0.1:9", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_workers_and_scheduler_are_refused_before_any_work(tmp_path):
    with pytest.raises(InputError, match="workers and scheduler"):
        generate(tmp_path / "s", spec("toy"), 10, workers=2, scheduler="local:2", progress=False)


# -- generation ---------------------------------------------------------------------------
def test_dask_store_equals_local_store_byte_for_byte(ref, address, cluster, tmp_path):
    out = generate(tmp_path / "by-address", spec("toy"), N, seed=SEED, chunk=CHUNK, scheduler=address, progress=False).path
    assert array_tree(out) == array_tree(ref)
    assert verify(out, progress=False).ok
    # a connected Client, and a generator object pickled to the workers
    obj = generate(tmp_path / "by-object", toygen.toy, N, seed=SEED, chunk=CHUNK, scheduler=cluster[1], progress=False)
    assert array_tree(obj.path) == array_tree(ref) and obj.generator["spec"] is None
    # a scheduler file, as `dask scheduler --scheduler-file` writes it
    (tmp_path / "scheduler.json").write_text(json.dumps({"address": address}))
    by_file = generate(tmp_path / "by-file", spec("toy"), N, seed=SEED, chunk=CHUNK, scheduler=str(tmp_path / "scheduler.json"), progress=False)
    assert array_tree(by_file.path) == array_tree(ref)
    generate(out, spec("toy"), N, seed=SEED, scheduler=address, progress=False)  # complete: nothing to do
    assert array_tree(out) == array_tree(ref)


def test_url_stores_through_dask(ref, address, tmp_path):
    import fsspec
    from distributed import Client

    # a file:// URL is the local path
    out = generate(f"file://{tmp_path / 'by-url'}", spec("toy"), N, seed=SEED, chunk=CHUNK, scheduler=address, progress=False)
    assert array_tree(out.path) == array_tree(ref)
    # worker processes cannot see this process's memory:// filesystem: refused before any task
    with pytest.raises(InputError, match="cannot see"):
        generate(f"memory://dask-{tmp_path.name}/a", spec("toy"), N, seed=SEED, chunk=CHUNK, scheduler=address, progress=False)
    # workers that share it (threads) write it through fsspec: the same bytes as a local run
    url = f"memory://dask-{tmp_path.name}/b"
    with Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as threads:
        store = generate(url, spec("toy"), N, seed=SEED, chunk=CHUNK, scheduler=threads, progress=False)
    assert store.is_complete and verify(url, progress=False).ok
    fs, root = fsspec.core.url_to_fs(url)
    on_url = {k[len(root) + 1 :]: hashlib.sha256(fs.cat_file(k)).hexdigest() for k in fs.find(root) if k != f"{root}/zarr.json"}
    assert on_url == array_tree(ref)


def test_local_n_starts_its_own_cluster(ref, tmp_path, monkeypatch):
    before, seen = dict(os.environ), {}
    run_chunks = wc.run_chunks

    def spy(client, *args, **kwargs):
        seen.update(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_"))
        return run_chunks(client, *args, **kwargs)

    monkeypatch.setattr(wc, "run_chunks", spy)
    out = generate(tmp_path / "s", spec("toy"), N, seed=SEED, chunk=CHUNK, scheduler="local:1", progress=False).path
    assert array_tree(out) == array_tree(ref)
    assert len(seen) == 1 and set(seen.values()) == {None}  # one worker, without Dask's malloc trim setting
    assert dict(os.environ) == before  # the nanny's settings did not leak into this process


def test_a_failing_task_stops_the_run_and_the_store_resumes(ref, address, tmp_path):
    out = tmp_path / "s"
    # nan_late has toy's identity but renders NaN for loud clips: some chunk fails on a worker
    with pytest.raises(RenderError, match="contains NaN"):
        generate(out, spec("nan_late"), N, seed=SEED, chunk=CHUNK, scheduler=address, progress=False)
    done = open_store(out).completed()
    assert 0 < done.sum() < len(done)
    generate(out, spec("toy"), N, seed=SEED, scheduler=address, progress=False)
    assert array_tree(out) == array_tree(ref)


def test_ctrl_c_waits_for_chunks_in_flight_and_the_store_resumes(ref, address, cluster, tmp_path, capsys):
    client = cluster[1]
    # toygen's slow renders 1.6 s per chunk on the workers: the whole run then takes far longer than
    # the watcher below may wait for a core on a loaded 2-core machine (at 0.4 s a chunk, a full
    # suite run once finished before the Ctrl-C arrived)
    client.run(os.environ.__setitem__, "TOYGEN_DELAY", "0.2")
    out = tmp_path / "s"

    def ctrl_c_after_the_first_chunk() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any((out / "complete" / "c").glob("*")):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: it also wakes a main thread blocked in a wait

    argv = ["generate", "--generator", spec("slow"), "--n", str(N), "--seed", str(SEED), "--out", str(out), "--scheduler", address, "-q"]
    # Python's own Ctrl-C handler, whatever an earlier test or library left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=ctrl_c_after_the_first_chunk, daemon=True).start()
    try:
        assert main([*argv, "--chunk", str(CHUNK)]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
        client.run(os.environ.pop, "TOYGEN_DELAY", None)
    assert "interrupted" in capsys.readouterr().err
    done = open_store(out).completed()
    assert 0 < done.sum() < len(done)
    # drained: a chunk has data only if it is recorded complete, and nothing writes any more
    written = [(out / "waveform" / "c" / str(k) / "0").exists() for k in range(len(done))]
    assert written == done.tolist()
    time.sleep(1.0)
    assert open_store(out).completed().tolist() == done.tolist()
    assert main([*argv[:2], spec("toy"), *argv[3:]]) == 0
    assert array_tree(out) == array_tree(ref)


def test_cli_scheduler_errors_are_one_line(tmp_path, capsys):
    argv = ["generate", "--generator", spec("toy"), "--n", "10", "--out", str(tmp_path / "s"), "--scheduler", "local:0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "local:N needs N >= 1" in err[0]


def test_import_and_local_runs_never_import_dask(tmp_path, dask_fit):
    """``import wavinv``, a local generate and a Dask-fitted model's use import no dask."""
    model, _, _ = dask_fit
    code = f"""
import sys
import numpy as np
import wavinv
from wavinv.generate import generate
from wavinv.inverter import load
generate({str(tmp_path / 's')!r}, {spec('toy')!r}, 20, chunk=8, progress=False)
inv = load({str(model)!r})
pred = inv.estimator.predict(np.zeros((2, {toygen.N_SAMPLES}), np.float32))
assert pred.shape == (2, 3), pred.shape
print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# -- fitting ------------------------------------------------------------------------------
FIT = dict(n_estimators=40, n_components=8, min_child_samples=5, n_jobs=1, progress=False)


@pytest.fixture(scope="module")
def dask_fit(address, tmp_path_factory):
    """A local and a Dask fit of pca-lgbm on the same store (waveform input), the Dask one saved."""
    where = tmp_path_factory.mktemp("fit")
    store = generate(where / "store", spec("toy"), 320, seed=1, chunk=32, progress=False)
    local = fit_inverter(store, "pca-lgbm", "waveform", overrides=FIT)
    dask = fit_inverter(store, "pca-lgbm", "waveform", overrides=FIT, scheduler=address)
    return dask.save(where / "dask.joblib"), local, store


def test_dask_fit_predicts_like_a_local_fit(dask_fit):
    model, local, store = dask_fit
    dask = load(model)  # a plain model: no cluster needed to load or predict
    assert type(dask.estimator) is PCALGBMRegressor and type(local.estimator) is PCALGBMRegressor
    X, y = store.waveforms("test"), store.params_unit("test")
    # features are computed on the workers, the PCA on the rows a local fit picks: the same
    same_features(dask.estimator.reducer_.transform(X), local.estimator.reducer_.transform(X))
    # distributed LightGBM bins each worker's rows, so the trees differ: compare accuracy and agreement
    pl, pd = local.estimator.predict(X), dask.estimator.predict(X)
    centre = param_mae(y, np.full_like(y, 0.5))
    assert param_mae(y, pd) < 0.9 * centre and param_mae(y, pl) < 0.9 * centre
    assert abs(param_mae(y, pd) - param_mae(y, pl)) < 0.03
    assert all(np.corrcoef(pl[:, j], pd[:, j])[0, 1] > 0.8 for j in range(y.shape[1]))
    assert dask.validation["param_mae"] == pytest.approx(local.validation["param_mae"], abs=0.03)


def test_dask_quantile_fit_samples_like_a_local_fit(dask_fit, address):
    _, _, store = dask_fit
    local = fit_inverter(store, "pca-lgbm-quantile", "waveform", overrides=FIT)
    dask = fit_inverter(store, "pca-lgbm-quantile", "waveform", overrides=FIT, scheduler=address)
    assert type(dask.estimator) is PCALGBMQuantile
    le, de = local.estimator, dask.estimator
    # the same rows held out for calibration, so maps of the same shape and a valid copula
    assert len(de.boosters_) == len(le.boosters_) == 3 * len(le.quantiles_)
    assert de.recalibration_.shape == le.recalibration_.shape and de.copula_chol_.shape == le.copula_chol_.shape
    X, y = store.waveforms("test"), store.params_unit("test")
    ls, ds = le.sample(X, 200, random_state=0), de.sample(X, 200, random_state=0)
    # 51 calibration rows and 36 test rows: coverage is noisy here (0.56 local, 0.67 Dask when written)
    assert abs(coverage(y, ds, level=0.8) - coverage(y, ls, level=0.8)) < 0.2
    assert abs(param_mae(y, ds.mean(axis=1)) - param_mae(y, ls.mean(axis=1))) < 0.03
    assert param_mae(y, de.predict(X)) < 0.9 * param_mae(y, np.full_like(y, 0.5))


def same_features(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float32 rounding: BLAS results may depend on how arrays are aligned in memory."""
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


def test_dask_fit_on_spectrograms(address, tmp_path):
    """Spectrograms computed on the workers give the features a local fit gets (kept tiny: 512 x 512 each)."""
    store = generate(tmp_path / "s", spec("toy"), 24, seed=5, chunk=8, progress=False)
    overrides = dict(FIT, n_estimators=5, n_components=4, min_child_samples=3)
    local = fit_inverter(store, "pca-lgbm", "spectrogram", overrides=overrides, n_validation=0)
    dask = fit_inverter(store, "pca-lgbm", "spectrogram", overrides=overrides, n_validation=0, scheduler=address)
    X = store_spectrograms(store)[:]
    same_features(dask.estimator.reducer_.transform(X), local.estimator.reducer_.transform(X))
    assert dask.estimator.predict(X).shape == (24, 3) and dask.estimator.input_shape_ == X.shape[1:]


def test_cli_fit_with_a_scheduler(address, ref, tmp_path, capsys):
    out = tmp_path / "m.joblib"
    argv = ["fit", "--store", str(ref), "--method", "pca-lgbm", "--input", "waveform", "--out", str(out), "--scheduler", address]
    assert main([*argv, "--set", "n_estimators=5", "--set", "n_components=4", "--set", "min_child_samples=3", "--set", "progress=false"]) == 0
    assert type(load(out).estimator) is PCALGBMRegressor
    capsys.readouterr()
    assert main(["fit", "--store", str(ref), "--method", "knn", "--out", str(tmp_path / "k.joblib"), "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert "supports methods pca-lgbm and pca-lgbm-quantile" in err and not (tmp_path / "k.joblib").exists()
