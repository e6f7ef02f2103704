"""The registry of methods: a name -> ``"module:function"`` building the estimator.

Builders are imported only when used, so listing the methods imports nothing
heavy. ``build_method("knn", n_neighbors=8)`` returns a configured, unfitted
estimator; keyword overrides replace the recipe's default hyper-parameters.

A builder's module may define ``TINY``: overrides that make the method fit in a
fraction of a second on toy data (the estimator contract test uses them).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from .errors import InputError

__all__ = ["INPUTS", "METHODS", "build_method", "method_names"]

# what an estimator can be fitted on: spectrograms from the frontend, or raw waveforms
INPUTS = ("spectrogram", "waveform")

METHODS: dict[str, str] = {
    "prior": "wavinv.baselines.prior:build",
    "knn": "wavinv.baselines.knn:build",
    "pca-lgbm": "wavinv.baselines.pca_lgbm:build",
    "pca-lgbm-quantile": "wavinv.baselines.pca_lgbm_quantile:build",
    "conv1d": "wavinv.baselines.conv1d:build",
    "spec-cnn": "wavinv.baselines.spec_cnn:build",
    "proxy": "wavinv.baselines.proxy:build",
    "sbi-npe": "wavinv.baselines.sbi_npe:build",  # a peer: needs wavinv[peers]
}


def method_names() -> list[str]:
    """Registered method names, in registration order."""
    return list(METHODS)


def method_builder(name: str) -> Callable[..., Any]:
    """The ``build(**overrides)`` function of a registered method."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    module, _, attr = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_method(name: str, **overrides: Any):
    """A new, unfitted estimator for method ``name`` with ``overrides`` applied."""
    return method_builder(name)(**overrides)
