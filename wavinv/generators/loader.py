"""``load_generator(spec)``: a built-in name, ``package.module:attr`` or ``path/file.py:attr``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..errors import GeneratorError
from .base import Generator, check_generator

__all__ = ["BUILTIN_GENERATORS", "load_generator"]

# name -> "module:attr"; imported only when asked for
BUILTIN_GENERATORS: dict[str, str] = {
    "synth100": "wavinv.generators.synth100:Synth100",
}


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise GeneratorError(f"generator file not found: {path}")
    # a stable module name per file, so pickling by reference works within a process
    name = "wavinv_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GeneratorError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise GeneratorError(f"importing {path} failed: {type(e).__name__}: {e}") from e
    return module


def load_generator(spec: str | Generator) -> Generator:
    """Load a generator. Importing a module runs its code: only load specs you trust."""
    if not isinstance(spec, str):
        return check_generator(spec)
    spec = spec.strip()
    if spec in BUILTIN_GENERATORS:
        target = BUILTIN_GENERATORS[spec]
    elif ":" in spec:
        target = spec
    else:
        raise GeneratorError(
            f"unknown generator {spec!r}: use a built-in name ({', '.join(BUILTIN_GENERATORS)}), "
            "'package.module:attr' or 'path/to/file.py:attr'"
        )
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise GeneratorError(f"generator spec {spec!r} must look like 'module:attr' or 'file.py:attr'")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(Path(where))
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:
            raise GeneratorError(f"cannot import module {where!r}: {type(e).__name__}: {e}") from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise GeneratorError(f"{where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "render")):
        # a zero-argument factory (a class or a function) returning the generator
        try:
            obj = obj()
        except Exception as e:
            raise GeneratorError(f"calling {spec!r} to make a generator failed: {type(e).__name__}: {e}") from e
    return check_generator(obj, origin=spec)
