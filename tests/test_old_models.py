"""Model files written by an earlier wavinv still load and give the same answers.

``tests/fixtures/old-models/`` was written by ``tests/fixtures/make_old_models.py``
with the code named in its ``written_by.json``, before the estimators' modules and
attributes were reorganised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wavinv.inverter import load
from wavinv.models.base import WavinvEstimator

OLD = Path(__file__).parent / "fixtures" / "old-models"
NAMES = sorted(p.stem for p in OLD.glob("*.joblib"))


@pytest.fixture(scope="module")
def expected():
    with np.load(OLD / "expected.npz") as f:
        return dict(f)


def test_every_kind_of_saved_estimator_is_covered():
    assert NAMES == ["conv1d-waveform", "pca-lgbm-quantile-spectrogram", "pca-lgbm-spectrogram", "spec-cnn-waveform"]


@pytest.mark.parametrize("name", NAMES)
def test_an_old_model_file_loads_and_predicts_and_samples_as_before(name, expected):
    inv = load(OLD / f"{name}.joblib")
    assert isinstance(inv.estimator, WavinvEstimator)
    waves = expected["waves"]
    X = waves if inv.input == "waveform" else inv.spectrograms(waves)
    np.testing.assert_allclose(inv.estimator.predict(X), expected[f"{name}/predict"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv.estimator.sample(X, 4, random_state=0), expected[f"{name}/sample"], rtol=1e-5, atol=1e-6)
    assert repr(type(inv.estimator)(**inv.estimator.get_params()).get_params()) == repr(inv.estimator.get_params())
