"""The estimator contract, checked for every method in ``wavinv.methods.METHODS``.

Each method is built with its recipe module's ``TINY`` overrides, so a method
added to the registry is covered here without editing this file.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from wavinv.errors import InputError
from wavinv.lazy import LazyArray
from wavinv.methods import METHODS, build_method

NAMES = list(METHODS)
KINDS = ["spectrogram", "waveform"]
N_TRAIN, N_TEST, N_SAMPLES = 48, 6, 5


def tiny(name: str) -> dict:
    module = importlib.import_module(METHODS[name].partition(":")[0])
    return dict(getattr(module, "TINY", {}))


def build(name: str, **overrides):
    return build_method(name, **{**tiny(name), **overrides})


def make_data(kind: str, n: int, seed: int):
    """Rows that depend on y: spectrogram-like (n, 16, 12) with P=3, waveform-like
    (n, 96) with P=1 (so both many and a single parameter are covered)."""
    rng = np.random.default_rng(seed)
    if kind == "spectrogram":
        y = rng.random((n, 3))
        f = np.arange(16)[None, :, None]
        t = np.arange(12)[None, None, :]
        X = -((f - 2 - 12 * y[:, 0, None, None]) ** 2) / 4 - 3 * y[:, 1, None, None] * t
    else:
        y = rng.random((n, 1))
        t = np.arange(96)[None, :] / 96
        X = np.sin(2 * np.pi * (2 + 4 * y[:, :1]) * t)
    X = X + 0.05 * rng.standard_normal(X.shape)
    return X.astype(np.float32), y


def lazy(X: np.ndarray) -> LazyArray:
    return LazyArray(len(X), X.shape[1:], X.dtype, lambda idx: X[idx])


@pytest.fixture(scope="module")
def data():
    return {kind: (make_data(kind, N_TRAIN, 0), make_data(kind, N_TEST, 1)[0]) for kind in KINDS}


_FITTED: dict = {}


def fitted(name: str, kind: str, data):
    if (name, kind) not in _FITTED:
        (X, y), _ = data[kind]
        _FITTED[name, kind] = build(name).fit(X, y)
    return _FITTED[name, kind]


@pytest.mark.parametrize("name", NAMES)
def test_params_clone_and_constructor(name):
    est = build(name)
    params = est.get_params()
    assert repr(type(est)(**params).get_params()) == repr(params)
    twin = clone(est)
    assert twin is not est and repr(twin.get_params()) == repr(params)
    for key, value in params.items():
        assert est.set_params(**{key: value}) is est
    with pytest.raises(ValueError):
        est.set_params(no_such_hyper_parameter=1)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")], "unfitted estimator has fitted attributes"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_sample_shapes_and_range(name, kind, data):
    (X, y), X_test = data[kind]
    est = fitted(name, kind, data)
    assert est.input_shape_ == X.shape[1:] and est.n_params_ == y.shape[1]
    pred = est.predict(X_test)
    assert pred.shape == (N_TEST, y.shape[1])
    samples = est.sample(X_test, N_SAMPLES, random_state=0)
    assert samples.shape == (N_TEST, N_SAMPLES, y.shape[1])
    assert est.sample(X_test[:1], 1, random_state=0).shape == (1, 1, y.shape[1])
    for out in (pred, samples):
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_random_state(name, kind, data):
    (X, y), X_test = data[kind]
    est = fitted(name, kind, data)
    again = clone(est).fit(X, y)
    np.testing.assert_array_equal(est.predict(X_test), again.predict(X_test))
    a = est.sample(X_test, N_SAMPLES, random_state=3)
    np.testing.assert_array_equal(a, again.sample(X_test, N_SAMPLES, random_state=3))
    np.testing.assert_array_equal(a, est.sample(X_test, N_SAMPLES, random_state=np.random.default_rng(3)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_lazy_input_gives_the_same_result(name, kind, data):
    (X, y), X_test = data[kind]
    est = fitted(name, kind, data)
    from_lazy = build(name).fit(lazy(X), y)
    expected = est.predict(X_test)
    np.testing.assert_array_equal(from_lazy.predict(X_test), expected)
    np.testing.assert_array_equal(est.predict(lazy(X_test)), expected)
    np.testing.assert_array_equal(
        from_lazy.sample(lazy(X_test), N_SAMPLES, random_state=1), est.sample(X_test, N_SAMPLES, random_state=1)
    )


_CHILD = """
import sys, traceback, joblib, numpy as np
models, inputs = joblib.load(sys.argv[1])
out = {}
for (name, kind), est in models.items():
    try:
        out[f"{name}/{kind}/predict"] = est.predict(inputs[kind])
        out[f"{name}/{kind}/sample"] = est.sample(inputs[kind], 4, random_state=7)
    except Exception:
        out[f"{name}/{kind}/error"] = np.array(traceback.format_exc())
np.savez(sys.argv[2], **out)
"""


@pytest.fixture(scope="module")
def fresh_process_outputs(data, tmp_path_factory):
    """Every fitted model saved with joblib, loaded and run in one new interpreter."""
    models = {(name, kind): fitted(name, kind, data) for name in NAMES for kind in KINDS}
    inputs = {kind: data[kind][1] for kind in KINDS}
    folder = tmp_path_factory.mktemp("joblib")
    joblib.dump((models, inputs), folder / "models.joblib")
    subprocess.run([sys.executable, "-c", _CHILD, str(folder / "models.joblib"), str(folder / "out.npz")], check=True, timeout=300)
    return dict(np.load(folder / "out.npz"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_joblib_round_trip_in_a_fresh_process(name, kind, data, fresh_process_outputs):
    got = fresh_process_outputs
    assert f"{name}/{kind}/error" not in got, str(got.get(f"{name}/{kind}/error"))
    est, X_test = fitted(name, kind, data), data[kind][1]
    np.testing.assert_array_equal(got[f"{name}/{kind}/predict"], est.predict(X_test))
    np.testing.assert_array_equal(got[f"{name}/{kind}/sample"], est.sample(X_test, 4, random_state=7))


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_typed_errors(name, data):
    (X, y), X_test = data["spectrogram"]
    with pytest.raises(NotFittedError):
        build(name).predict(X_test)
    with pytest.raises(InputError):
        build(name).fit(X, y[:-1])
    for bad in (np.where(y > 0.5, np.nan, y), np.full_like(y, np.inf), None, y[:, :, None]):
        with pytest.raises(InputError):
            build(name).fit(X, bad)
    with pytest.raises(InputError):
        build(name).fit(X[:, 0, 0], y)
    est = fitted(name, "spectrogram", data)
    with pytest.raises(InputError):
        est.predict(X_test[:, :, :-1])
    with pytest.raises(InputError):
        est.sample(X_test, 0)


@pytest.mark.parametrize("name", NAMES)
def test_a_one_dimensional_y_is_one_parameter(name, data):
    """As scikit-learn expects of a regressor: predict answers (N,) after a 1-D y; sample keeps its (N, n, P)."""
    (X, y), X_test = data["spectrogram"]
    est = build(name).fit(X, y[:, 0])
    assert est.n_params_ == 1 and est.n_features_in_ == X.shape[1]
    pred = est.predict(X_test)
    assert pred.shape == (N_TEST,)
    np.testing.assert_array_equal(pred, build(name).fit(X, y[:, :1]).predict(X_test)[:, 0])
    assert est.sample(X_test, N_SAMPLES, random_state=0).shape == (N_TEST, N_SAMPLES, 1)


@pytest.mark.parametrize("name", NAMES)
def test_targets_outside_the_unit_interval_come_back_in_their_own_units(name, data):
    """Each column is modelled on [0, 1] widened to cover its training values (``y_bounds_``)."""
    (X, y), X_test = data["spectrogram"]
    scaled = 10.0 * y - 3.0
    est = build(name).fit(X, scaled)
    lo, hi = est.y_bounds_
    np.testing.assert_allclose(lo, np.minimum(scaled.min(axis=0), 0.0))
    np.testing.assert_allclose(hi, np.maximum(scaled.max(axis=0), 1.0))
    for out in (est.predict(X_test), est.sample(X_test, N_SAMPLES, random_state=0)):
        assert np.isfinite(out).all() and (out >= lo - 1e-9).all() and (out <= hi + 1e-9).all()
    unit = fitted(name, "spectrogram", data)
    np.testing.assert_array_equal(unit.y_bounds_, [[0.0] * 3, [1.0] * 3])


def test_npe_embeds_a_waveform_with_a_1d_cnn(data):
    pytest.importorskip("sbi")
    import torch

    est = fitted("sbi-npe", "waveform", data)
    convs = [m for m in est.estimator_.modules() if isinstance(m, torch.nn.Conv1d)]
    assert est.pooled_shape_ == (64,) and len(convs) == 2  # TINY pools 96 samples to 64: two conv + pool-by-4 layers


def test_npe_max_time_stops_training_and_keeps_a_usable_posterior(data):
    pytest.importorskip("sbi")
    (X, y), X_test = data["spectrogram"]
    unlimited = fitted("sbi-npe", "spectrogram", data)
    assert unlimited.fit_stats_["stopped"] == "sbi"
    # a deadline past before the first epoch: no epoch runs, the initial weights are kept
    est = build("sbi-npe", max_epochs=50, stop_after_epochs=50, max_time=1e-9).fit(X, y)
    assert est.fit_stats_["stopped"] == "max_time" and est.epochs_ == 0
    draws = est.sample(X_test, N_SAMPLES, random_state=0)
    assert draws.shape == (len(X_test), N_SAMPLES, 3) and np.isfinite(draws).all()
    assert not hasattr(est.estimator_, "_train_epoch") or "_train_epoch" not in vars(est.estimator_)
    for bad in (0, -1.0, "60", float("nan")):
        with pytest.raises(InputError, match="max_time"):
            build("sbi-npe", max_time=bad).fit(X, y)


def test_npe_deadline_cuts_an_epoch_between_batches():
    pytest.importorskip("sbi")
    from wavinv.models.npe import _Until

    loader = type("Loader", (), {"batch_size": 2, "__len__": lambda self: 3, "__iter__": lambda self: iter([1, 2, 3])})()
    assert list(_Until(loader, float("inf"))) == [1, 2, 3]
    cut = _Until(loader, float("-inf"))
    assert list(cut) == [] and len(cut) == 3 and cut.batch_size == 2
