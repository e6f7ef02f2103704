"""``load_generator(spec)``: a built-in name, ``package.module:attr`` or ``path/file.py:attr``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..errors import GeneratorError
from .base import Generator, check_generator, generator_identity, identity_differences, identity_label

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
    except (Exception, SystemExit) as e:  # a module calling sys.exit() at import is a broken generator, not our exit
        del sys.modules[name]
        raise GeneratorError(f"importing {path} failed: {_what(e)}") from None
    return module


def _what(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    return f"{type(e).__name__}: {e}"


def generator_file(spec: str) -> Path | None:
    """The Python file a spec imports (``path/file.py:attr``), or None for a module or built-in name."""
    if not isinstance(spec, str):
        return None
    where, sep, _ = spec.strip().rpartition(":")
    if sep and (where.endswith(".py") or "/" in where or "\\" in where):
        return Path(where)
    return None


def portable_spec(spec: str) -> tuple[str, str | None]:
    """``(the spec to record, a caveat or None)``: one that loads the same generator from any folder.

    A file spec gets its file's absolute path. A module spec resolves wherever the
    module is importable; when it was imported from the current folder (not
    installed), the caveat says that another folder needs ``PYTHONPATH``.
    """
    spec = spec.strip()
    path = generator_file(spec)
    if path is not None:
        return f"{path.resolve()}:{spec.rpartition(':')[2]}", None
    if spec in BUILTIN_GENERATORS:
        return spec, None
    top = spec.rpartition(":")[0].split(".")[0]
    origin = getattr(sys.modules.get(top), "__file__", None)
    if origin is None:
        return spec, None
    origin = Path(origin).resolve()
    root = origin.parent.parent if origin.name == "__init__.py" else origin.parent  # the folder it was found in
    cwd = Path.cwd().resolve()
    if root == cwd:
        return spec, f"module {top!r} was imported from the current folder {cwd}: from another folder it loads only with PYTHONPATH={cwd} (or install it)"
    return spec, None


def recorded_generator(identity: dict[str, Any], generator: "str | Generator | None", owner: str, error: type = GeneratorError, made: str = "was made by") -> Generator:
    """The generator for something that records one (a store, a model): ``generator``, or the recorded built-in.

    A recorded spec that is not a built-in name is never imported: importing runs
    code, and a store or model file must not choose code to run. A loaded generator
    that is not the recorded one (``identity_differences``) is refused, naming both
    and what differs; problems raise ``error`` (the owner's error type). ``made`` says
    how the owner came from its generator in that message ("was fitted on").
    """
    spec = identity.get("spec")
    if generator is None:
        if spec is None:
            raise error(f"{owner} records no generator spec (made from a Python object): name the generator with --generator SPEC")
        if spec not in BUILTIN_GENERATORS:
            raise error(
                f"{owner} was made by generator {identity.get('name')!r} (spec {spec!r}); "
                "name it with --generator SPEC (importing it runs its code, so wavinv never imports a recorded spec)"
            )
        generator = spec
    try:
        gen = load_generator(generator)
    except GeneratorError as e:
        recorded = generator_file(spec) if generator is not spec else None
        if recorded is not None and recorded.is_file() and generator_file(generator) is not None:
            raise error(f"{e} ({owner} records {spec!r}, which exists: name that)") from None
        raise
    actual = generator_identity(gen)
    differences = identity_differences(identity, actual, owner, "the generator")
    if differences:
        raise error(f"{owner} {made} generator {identity_label(identity)}, not {identity_label(actual)}: {'; '.join(differences)}")
    return gen


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
    if generator_file(target) is not None:
        module = _import_file(generator_file(target))
    else:
        try:
            module = importlib.import_module(where)
        except (Exception, SystemExit) as e:
            raise GeneratorError(f"cannot import module {where!r}: {_what(e)}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise GeneratorError(f"{where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "render")):
        # a zero-argument factory (a class or a function) returning the generator
        try:
            obj = obj()
        except (Exception, SystemExit) as e:
            raise GeneratorError(f"calling {spec!r} to make a generator failed: {_what(e)}") from None
    return check_generator(obj, origin=spec)
