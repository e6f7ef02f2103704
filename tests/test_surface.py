"""The public surface: the contract's names come from ``wavinv``, and every module's ``__all__`` names what it holds."""

from __future__ import annotations

import importlib
import pkgutil

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
