"""The baselines on a synthetic problem whose answer is partly learnable.

Spectrogram-like rows ``(24, 16)`` in dB: a spectral peak whose centre is
``y0``, a decay over time set by ``y1``, a level set by ``y2 + y3`` only (so just
their sum is identifiable: given the input they are negatively dependent), and
``y4``, ``y5`` with no effect at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from wavinv.errors import InputError
from wavinv.methods import build_method, method_names
from wavinv.metrics import coverage, diversity, param_mae

IDENTIFIABLE, SUM_ONLY, NO_EFFECT = [0, 1], [2, 3], [4, 5]
FAST = dict(n_components=8, progress=False)


def problem(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.random((n, 6))
    f = np.arange(24)[None, :, None]
    t = np.arange(16)[None, None, :]
    centre = 3 + 18 * y[:, 0, None, None]
    decay = 0.5 + 3 * y[:, 1, None, None]
    level = 20 * (y[:, 2, None, None] + y[:, 3, None, None])
    X = np.maximum(level - ((f - centre) / 2.5) ** 2 - decay * t, -60)
    return (X + 0.5 * rng.standard_normal(X.shape)).astype(np.float32), y


@pytest.fixture(scope="module")
def split():
    return problem(1500, 0), problem(400, 1)


@pytest.fixture(scope="module")
def models(split):
    (X, y), _ = split
    return {
        "prior": build_method("prior").fit(X, y),
        "knn": build_method("knn", **FAST).fit(X, y),
        "pca-lgbm": build_method("pca-lgbm", **FAST).fit(X, y),
        "pca-lgbm-quantile": build_method("pca-lgbm-quantile", **FAST).fit(X, y),
    }


@pytest.fixture(scope="module")
def samples(models, split):
    _, (X_test, _) = split
    return {name: m.sample(X_test, 100, random_state=0) for name, m in models.items()}


@pytest.mark.parametrize("name", ["knn", "pca-lgbm", "pca-lgbm-quantile"])
def test_learns_identifiable_parameters_and_no_more(name, models, split):
    _, (X_test, y_test) = split
    prior = param_mae(y_test, models["prior"].predict(X_test), axis=0)
    mae = param_mae(y_test, models[name].predict(X_test), axis=0)
    assert prior == pytest.approx(0.25, abs=0.03)  # the chance level: E|U - 0.5|
    assert (mae[IDENTIFIABLE] < 0.25 * prior[IDENTIFIABLE]).all()
    assert (mae[SUM_ONLY] < 0.85 * prior[SUM_ONLY]).all()  # the sum narrows each one down
    assert (mae[NO_EFFECT] > 0.9 * prior[NO_EFFECT]).all()  # nothing to learn, nothing faked


def test_quantile_intervals_are_calibrated_on_held_out_data(samples, split):
    _, (_, y_test) = split
    assert 0.70 <= coverage(y_test, samples["pca-lgbm-quantile"]) <= 0.90
    assert (np.abs(coverage(y_test, samples["pca-lgbm-quantile"], axis=0) - 0.8) < 0.12).all()
    assert 0.70 <= coverage(y_test, samples["prior"]) <= 0.90
    assert coverage(y_test, samples["pca-lgbm"]) < 0.1  # a point estimate has no interval


def test_quantile_samples_are_narrow_where_identifiable_and_wide_where_not(samples):
    s = samples["pca-lgbm-quantile"]
    width = (np.quantile(s, 0.9, axis=1) - np.quantile(s, 0.1, axis=1)).mean(axis=0)
    assert (width[IDENTIFIABLE] < 0.2).all()
    assert (width[NO_EFFECT] > 0.65).all()  # the prior's 80% interval is 0.8 wide
    assert (width[SUM_ONLY] > width[IDENTIFIABLE].max()).all() and (width[SUM_ONLY] < width[NO_EFFECT].min()).all()
    assert diversity(s).mean() < diversity(samples["prior"]).mean()


def test_copula_restores_dependence_between_parameters(models, samples, split):
    (X, y), (X_test, _) = split

    def within_target_corr(s):
        return np.mean([np.corrcoef(row[:, 2], row[:, 3])[0, 1] for row in s])

    # Given the input only y2 + y3 is known, so they trade off: negative correlation.
    assert within_target_corr(samples["pca-lgbm-quantile"]) < -0.4
    independent = build_method("pca-lgbm-quantile", calibration_fraction=0.0, **FAST).fit(X, y)
    assert abs(within_target_corr(independent.sample(X_test, 100, random_state=0))) < 0.15


def test_knn_samples_are_distinct_neighbours(models, split):
    (_, y), (X_test, _) = split
    knn = models["knn"]
    s = knn.sample(X_test[:20], knn.n_neighbors_, random_state=0)
    train_rows = {tuple(r) for r in y}
    for row in s:
        assert len({tuple(c) for c in row}) == knn.n_neighbors_  # without replacement
        assert all(tuple(c) in train_rows for c in row)
    weighted = build_method("knn", weights="distance", **FAST).fit(*split[0])
    assert weighted.sample(X_test[:3], 40, random_state=0).shape == (3, 40, 6)  # more than k: with replacement
    _, (X_test, y_test) = split
    assert param_mae(y_test, weighted.predict(X_test), axis=0)[0] < 0.05


def test_lightgbm_fits_do_not_depend_on_the_number_of_workers(split):
    (X, y), (X_test, _) = split
    one, two = (build_method("pca-lgbm-quantile", n_jobs=n, n_estimators=10, **FAST).fit(X[:300], y[:300]) for n in (1, 2))
    np.testing.assert_array_equal(one.predict_quantiles(X_test), two.predict_quantiles(X_test))
    np.testing.assert_array_equal(one.sample(X_test, 8, random_state=0), two.sample(X_test, 8, random_state=0))


def test_registry_and_hyper_parameter_errors(split):
    (X, y), _ = split
    assert method_names()[:4] == ["prior", "knn", "pca-lgbm", "pca-lgbm-quantile"]
    with pytest.raises(InputError, match="known methods: prior, knn"):
        build_method("no-such-method")
    with pytest.raises(InputError, match="n_neighbors"):
        build_method("knn", n_neighbours=3)
    bad = [
        ("knn", dict(weights="closest")),
        ("knn", dict(n_neighbors=0)),
        ("pca-lgbm", dict(learning_rate=0)),
        ("pca-lgbm", dict(pool_shape=(8,))),
        ("pca-lgbm-quantile", dict(quantiles=(0.5,))),
        ("pca-lgbm-quantile", dict(quantiles=(0.9, 0.1))),
        ("pca-lgbm-quantile", dict(calibration_fraction=1.0)),
    ]
    for name, overrides in bad:
        with pytest.raises(InputError):
            build_method(name, **overrides, progress=False).fit(X[:100], y[:100])
