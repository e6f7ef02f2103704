"""Estimators: scikit-learn regressors, ``fit(X, y)``, ``predict(X)``, ``sample(X, n)``.

``X`` is spectrograms ``(N, F, T)`` or waveforms ``(N, T)`` (numpy or
``wavinv.lazy.LazyArray``), ``y`` unit-scaled parameters ``(N, P)``, or ``(N,)``
for one. They pass scikit-learn's ``check_estimator`` (``tests/test_sklearn_checks.py``
names the few checks a method is expected to fail, and why).
"""

from .base import WavinvEstimator
from .knn import KNNSampler
from .lgbm import PCALGBMQuantile, PCALGBMRegressor
from .prior import PriorSampler

__all__ = ["KNNSampler", "PCALGBMQuantile", "PCALGBMRegressor", "PriorSampler", "WavinvEstimator"]
