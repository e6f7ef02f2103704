"""Estimators: scikit-learn style, ``fit(X, y)``, ``predict(X)``, ``sample(X, n)``.

``X`` is spectrograms ``(N, F, T)`` or waveforms ``(N, T)`` (numpy or
``wavinv.lazy.LazyArray``), ``y`` unit-scaled parameters ``(N, P)``.
"""

from .base import WavinvEstimator
from .knn import KNNSampler
from .lgbm import PCALGBMQuantile, PCALGBMRegressor
from .prior import PriorSampler

__all__ = ["KNNSampler", "PCALGBMQuantile", "PCALGBMRegressor", "PriorSampler", "WavinvEstimator"]
