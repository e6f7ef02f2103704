"""Generators: the protocol, a function wrapper, the loader and the built-in synth."""

from .base import (
    FunctionGenerator,
    Generator,
    check_generator,
    generator_identity,
    identity_differences,
    identity_label,
    render_checked,
    render_finite,
    takes_seed,
)
from .loader import BUILTIN_GENERATORS, generator_file, load_generator, portable_spec, recorded_generator

__all__ = ["BUILTIN_GENERATORS", "FunctionGenerator", "Generator", "check_generator", "load_generator"]
