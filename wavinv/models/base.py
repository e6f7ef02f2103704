"""What every wavinv estimator shares: input checks, random states, recipes.

An estimator subclasses ``WavinvEstimator`` (a scikit-learn ``BaseEstimator``) and
implements ``fit(X, y)``, ``predict(X) -> (N, P)`` and
``sample(X, n_samples, random_state=None) -> (N, n_samples, P)``, with outputs in
[0, 1]. ``X`` is spectrograms ``(N, F, T)`` or waveforms ``(N, T)``, a numpy array
or a ``wavinv.lazy.LazyArray``; ``y`` is unit-scaled parameters ``(N, P)``.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ..errors import InputError
from ..lazy import LazyArray
from ..limits import cpu_count, positive_int

__all__ = ["WavinvEstimator"]


# a hyper-parameter's check: called with its name and value, raises ``InputError`` when the value is bad
Check = Callable[[str, Any], Any]


class WavinvEstimator(BaseEstimator):
    """Base class: validation helpers and the fitted attributes every estimator has.

    ``_check_fit_inputs`` sets ``input_shape_`` (the shape of one row of ``X``) and
    ``n_params_``; ``_check_X`` refuses inputs of another shape at predict time.
    ``_checks`` declares, as data, how hyper-parameters are validated
    (scikit-learn's ``_parameter_constraints`` habit): a subclass extends its
    base's dict; ``_check_hyper_parameters`` runs them at ``fit``.
    """

    _kind: ClassVar[str] = "estimator"  # the method's name, in messages
    _checks: ClassVar[dict[str, Check]] = {}

    def _check_hyper_parameters(self) -> None:
        for name, check in self._checks.items():
            try:
                check(name, getattr(self, name))
            except InputError as e:
                raise InputError(f"{self._kind}: {e}") from None

    def _check_fit_inputs(self, X, y) -> tuple[Any, np.ndarray]:
        X = _as_input(X)
        n = len(X)
        if n < 2:
            raise InputError(f"need at least 2 training examples, got {n}")
        y = _numeric(y, "y", np.float64)
        if y.ndim != 2 or y.shape[0] != n or y.shape[1] < 1:
            raise InputError(f"y must be unit-scaled parameters of shape ({n}, P), got {y.shape}")
        if not np.isfinite(y).all() or y.min() < 0.0 or y.max() > 1.0:
            raise InputError("y must be unit-scaled parameters: finite values in [0, 1]")
        self.input_shape_ = tuple(X.shape[1:])
        self.n_params_ = int(y.shape[1])
        return X, y

    def _check_X(self, X):
        check_is_fitted(self)
        X = _as_input(X)
        if tuple(X.shape[1:]) != self.input_shape_:
            raise InputError(
                f"this model was fitted on rows of shape {self.input_shape_}, got rows of shape {tuple(X.shape[1:])}"
            )
        return X


def _numeric(a, name: str, dtype) -> np.ndarray:
    try:
        return np.asarray(a, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be an array of numbers ({e})") from None


def _as_input(X):
    if not isinstance(X, (np.ndarray, LazyArray)):
        X = _numeric(X, "X", np.float32)
    if X.ndim not in (2, 3):
        raise InputError(f"X must be waveforms (N, T) or spectrograms (N, F, T), got shape {tuple(X.shape)}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise InputError(f"X must hold real numbers, got dtype {X.dtype}")
    return X


def one_of(choices: tuple[str, ...]) -> Check:
    """A check that the value is one of ``choices``."""

    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")

    return check


def optional(check: Check) -> Check:
    """``check``, with None allowed too."""
    return lambda name, value: None if value is None else check(name, value)


def check_n_samples(n_samples) -> int:
    return positive_int("n_samples", n_samples)


def as_generator(random_state) -> np.random.Generator:
    """A numpy ``Generator`` from None (fresh entropy), an int, a ``SeedSequence``,
    a ``Generator`` (used as is) or a legacy ``RandomState`` (seeds a new one)."""
    if isinstance(random_state, np.random.RandomState):
        random_state = random_state.randint(0, 2**31 - 1)
    return np.random.default_rng(random_state)


def n_threads(n_jobs: int | None) -> int:
    """Threads to use: ``n_jobs``, or every core this process may run on when None."""
    return cpu_count() if n_jobs is None else positive_int("n_jobs", n_jobs)


def configure(cls: type[BaseEstimator], defaults: dict[str, Any], overrides: dict[str, Any]) -> BaseEstimator:
    """``cls(**defaults)`` with ``overrides`` applied; unknown names are an ``InputError``."""
    est = cls(**defaults)
    unknown = sorted(set(overrides) - set(est.get_params()))
    if unknown:
        known = ", ".join(sorted(est.get_params()))
        raise InputError(f"{cls.__name__} has no hyper-parameter {', '.join(unknown)} (known: {known})")
    return est.set_params(**overrides)
