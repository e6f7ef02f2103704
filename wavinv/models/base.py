"""What every wavinv estimator shares: input checks, targets, random states, recipes.

An estimator subclasses ``WavinvEstimator`` (a scikit-learn ``RegressorMixin``,
``BaseEstimator``) and implements ``fit(X, y)``, ``predict(X) -> (N, P)`` and
``sample(X, n_samples, random_state=None) -> (N, n_samples, P)``. ``X`` is
spectrograms ``(N, F, T)`` or waveforms ``(N, T)``, a numpy array (or anything
``check_array`` takes) or a ``wavinv.lazy.LazyArray``; ``y`` is unit-scaled
parameters ``(N, P)``, or ``(N,)`` for one parameter (then ``predict`` returns
``(N,)``, as scikit-learn expects, and ``sample`` still ``(N, n_samples, 1)``).

Outputs are in [0, 1] for unit-scaled ``y``. Other finite targets are accepted
too, as any scikit-learn regressor accepts them: each column is then modelled on
the unit interval widened to cover its training values (``y_bounds_``), mapped
to [0, 1] inside the estimator and back on the way out, so an estimator works on
unit-scaled values only and its outputs stay within those bounds.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..errors import InputError
from ..lazy import LazyArray
from ..limits import cpu_count, positive_int

__all__ = ["WavinvEstimator"]


# a hyper-parameter's check: called with its name and value, raises ``InputError`` when the value is bad
Check = Callable[[str, Any], Any]


class _NotNumbers(InputError, TypeError):
    """``X`` or ``y`` holds values that are not numbers (scikit-learn raises a ``TypeError`` for these)."""


class WavinvEstimator(RegressorMixin, BaseEstimator):
    """Base class: validation helpers, tags and the fitted attributes every estimator has.

    ``_check_fit_inputs`` validates ``X`` and ``y`` and sets ``n_features_in_``
    (``X.shape[1]``, scikit-learn's convention), ``input_shape_`` (the shape of
    one row of ``X``), ``n_params_`` and ``y_bounds_`` (``(2, P)``: the interval
    each output lies in, [0, 1] for unit-scaled ``y``); ``_check_X`` refuses
    inputs of another shape at predict time. ``_checks`` declares, as data, how
    hyper-parameters are validated (scikit-learn's ``_parameter_constraints``
    habit): a subclass extends its base's dict; ``check_hyper_parameters`` runs
    them at ``fit``, and a caller may run it before reading any data.
    """

    _kind: ClassVar[str] = "estimator"  # the method's name, in messages
    _checks: ClassVar[dict[str, Check]] = {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # spectrograms (N, F, T) besides waveforms (N, T)
        tags.target_tags.multi_output = True  # one column per parameter; a 1-D y is one parameter
        return tags

    def check_hyper_parameters(self) -> None:
        """Refuse (``InputError``) a hyper-parameter value the estimator cannot fit with; reads no data."""
        for name, check in self._checks.items():
            try:
                check(name, getattr(self, name))
            except InputError as e:
                raise InputError(f"{self._kind}: {e}") from None

    def _check_fit_inputs(self, X, y) -> tuple[Any, np.ndarray]:
        """Validated ``X`` and ``y`` as unit-scaled ``(N, P)`` float64; sets the fitted shapes."""
        X = self._validate_X(X, reset=True)
        if y is None:
            raise InputError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = check_targets(y, len(X))
        self._fitted_on(tuple(X.shape[1:]), y.shape[1] if y.ndim == 2 else 1, y_1d=y.ndim == 1)
        y = y.reshape(len(y), -1)
        self.y_bounds_ = np.stack([np.minimum(y.min(axis=0), 0.0), np.maximum(y.max(axis=0), 1.0)])
        return X, self._to_unit(y)

    def _fitted_on(self, input_shape: tuple[int, ...], n_params: int, y_1d: bool = False) -> None:
        """Record the shapes of a fit on rows of ``input_shape`` and ``n_params`` unit-scaled targets."""
        self.input_shape_ = tuple(int(s) for s in input_shape)
        self.n_features_in_ = self.input_shape_[0]
        self.n_params_ = int(n_params)
        self.y_bounds_ = np.stack([np.zeros(self.n_params_), np.ones(self.n_params_)])
        self._y_1d = bool(y_1d)

    def _check_X(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        if tuple(X.shape[1:]) != self.input_shape_:
            raise InputError(
                f"this model was fitted on rows of shape {self.input_shape_}, got rows of shape {tuple(X.shape[1:])}"
            )
        return X

    def _validate_X(self, X, reset: bool):
        """``X`` checked by scikit-learn's ``validate_data`` (a ``LazyArray`` stays lazy:
        its shape and dtype are checked here, its values as its rows are read)."""
        if isinstance(X, LazyArray):
            if X.ndim not in (2, 3) or not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
                raise InputError(f"X must be real waveforms (N, T) or spectrograms (N, F, T), got {X.dtype} of shape {X.shape}")
            if reset and len(X) < 2:
                raise InputError(f"need at least 2 training examples, got {len(X)} sample(s)")
            if reset:
                self.n_features_in_ = X.shape[1]
            elif X.shape[1] != getattr(self, "n_features_in_", X.shape[1]):
                raise InputError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} features as input.")
            return X
        with _as_input_errors():
            X = validate_data(self, X, reset=reset, allow_nd=True, ensure_min_samples=2 if reset else 0)
        if X.ndim not in (2, 3):
            raise InputError(f"X must be waveforms (N, T) or spectrograms (N, F, T), got shape {X.shape}")
        return X

    def _to_unit(self, y: np.ndarray) -> np.ndarray:
        lo, hi = self.y_bounds_
        return y if _is_unit(self.y_bounds_) else (y - lo) / (hi - lo)

    def _from_unit(self, u: np.ndarray, axis: int = -1) -> np.ndarray:
        """Unit-scaled outputs (parameters along ``axis``) in the units of the training targets."""
        bounds = getattr(self, "y_bounds_", None)  # None: a model saved before targets had bounds
        if bounds is None or _is_unit(bounds):
            return u
        shape = [1] * u.ndim
        shape[axis] = -1
        lo, hi = bounds[0].reshape(shape), bounds[1].reshape(shape)
        return lo + u * (hi - lo)

    def _predictions(self, u: np.ndarray) -> np.ndarray:
        """Unit-scaled point estimates ``(N, P)`` -> ``predict``'s answer (``(N,)`` after a 1-D ``y``)."""
        out = self._from_unit(u)
        return out[:, 0] if getattr(self, "_y_1d", False) else out


def _is_unit(bounds: np.ndarray) -> bool:
    return bool(np.all(bounds[0] == 0.0) and np.all(bounds[1] == 1.0))


@contextmanager
def _as_input_errors():
    """scikit-learn's validation errors, raised as wavinv's typed errors with the same message."""
    try:
        yield
    except InputError:
        raise
    except TypeError as e:
        raise _NotNumbers(str(e)) from None
    except ValueError as e:
        raise InputError(str(e)) from None


def check_targets(y, n: int) -> np.ndarray:
    """Finite targets ``(n, P)`` or ``(n,)`` as float64."""
    with _as_input_errors():
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y", ensure_min_samples=0)
    if y.ndim not in (1, 2) or len(y) != n:
        raise InputError(f"y must be parameters of shape ({n}, P), or ({n},) for one, got {y.shape}")
    return y


def one_of(choices: tuple[str, ...]) -> Check:
    """A check that the value is one of ``choices``."""

    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")

    return check


def optional(check: Check) -> Check:
    """``check``, with None allowed too."""
    return lambda name, value: None if value is None else check(name, value)


def positive_number(name: str, value: Any) -> None:
    """A real number > 0 (a rate, a step, seconds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0.0 < float(value) < np.inf:
        raise InputError(f"{name} must be a number > 0, got {value!r}")


def fraction(name: str, value: Any) -> None:
    """A real number in [0, 1) (a share of the rows held out)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0.0 <= float(value) < 1.0:
        raise InputError(f"{name} must be a number in [0, 1), got {value!r}")


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
