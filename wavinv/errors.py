"""Typed errors. Everything a user can cause by bad input is a ``WavinvError``;
the command line turns it into one line on stderr and exit status 2."""

from __future__ import annotations

__all__ = [
    "WavinvError",
    "ParamSpaceError",
    "GeneratorError",
    "RenderError",
    "StoreError",
    "InputError",
    "ModelError",
    "MismatchError",
    "OutputError",
    "TimeLimitError",
]


class WavinvError(Exception):
    """Base class for errors caused by the user's input or files."""


class ParamSpaceError(WavinvError, ValueError):
    """An invalid parameter definition or out-of-range values."""


class GeneratorError(WavinvError):
    """A generator spec that cannot be loaded or an object that is not a generator."""


class RenderError(WavinvError):
    """A generator produced output of the wrong shape or dtype, or NaN/Inf."""


class StoreError(WavinvError):
    """A missing, foreign, incompatible or damaged dataset store."""


class InputError(WavinvError, ValueError):
    """A target, array or file given by the user that cannot be used."""


class ModelError(WavinvError):
    """A model file that cannot be loaded or does not match what it is used with."""


class MismatchError(ModelError, InputError):
    """A model, or its estimator, used with another generator, parameter space or picture than it was fitted on."""


class OutputError(WavinvError):
    """An output path that cannot or must not be written (an input, a directory, a full disk)."""


class TimeLimitError(WavinvError):
    """Work asked for that cannot finish within the time limit it was given."""
