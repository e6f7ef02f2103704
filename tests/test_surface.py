"""The public surface: the contract's names come from ``wavinv``, and every module's ``__all__`` names what it holds."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import wavinv

# DESIGN.md's Python contract and the README's examples
CONTRACT = ["Param", "ParamSpace", "FunctionGenerator", "load_generator", "open_store", "load", "WavinvError", "InputError"]
MODULES = sorted(m.name for m in pkgutil.walk_packages(wavinv.__path__, "wavinv.") if ".baselines" not in m.name and m.name != "wavinv.__main__")


def test_the_contract_is_importable_from_wavinv():
    assert set(CONTRACT) <= set(wavinv.__all__)
    for name in wavinv.__all__:
        assert getattr(wavinv, name) is not None, name


@pytest.mark.parametrize("name", MODULES)
def test_every_listed_name_exists(name):
    module = importlib.import_module(name)
    listed = getattr(module, "__all__", None)
    assert isinstance(listed, list) and len(set(listed)) == len(listed), name
    assert [n for n in listed if not hasattr(module, n)] == []


def test_every_package_folder_is_installed():
    """pyproject lists its packages by name: a folder left out installs without its code (editable installs hide it)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in (root / "wavinv").rglob("__init__.py")}
    assert on_disk <= listed, f"not installed: {sorted(on_disk - listed)}"
