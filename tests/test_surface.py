"""The public surface: the contract's names come from ``wavinv``, and every module's ``__all__`` names what it holds.

Also the README's Python examples get every name they use from ``wavinv``,
no two of wavinv's modules import each other, and the README's layout table
names every folder and module.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

import wavinv

ROOT = Path(__file__).resolve().parent.parent
# the names the package promises: the README's examples, its generator loader and its errors
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


# -- the README's Python examples ------------------------------------------------------
def readme_python() -> list[ast.Module]:
    """The README's ``python`` code blocks, parsed (indented ones, inside lists, too)."""
    blocks = re.findall(r"^[ \t]*```python[^\n]*\n(.*?)^[ \t]*```", (ROOT / "README.md").read_text(), re.M | re.S)
    return [ast.parse(textwrap.dedent(body)) for body in blocks]


def test_the_readme_examples_get_every_name_they_use_from_wavinv():
    """A name the examples use but neither define nor import from elsewhere must come from ``from wavinv import``."""
    trees = readme_python()
    assert trees
    from_wavinv, elsewhere, defined, used = set(), set(), set(dir(builtins)), set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.ImportFrom):
            (from_wavinv if node.module == "wavinv" else elsewhere).update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            elsewhere.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else defined).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    assert not elsewhere & {"wavinv"}, "the examples import wavinv's names with `from wavinv import ...`"
    assert used - defined - elsewhere <= from_wavinv, sorted(used - defined - elsewhere - from_wavinv)
    assert from_wavinv >= {"FunctionGenerator", "Param", "ParamSpace", "load", "open_store"}
    for name in sorted(from_wavinv):
        assert name in wavinv.__all__, name
        assert getattr(wavinv, name) is not None, name


# -- no import cycles ---------------------------------------------------------------
def module_files() -> dict[str, Path]:
    """``{"wavinv.store": path, "wavinv.models": path/__init__.py, ...}``."""
    files = {}
    for path in (ROOT / "wavinv").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The wavinv modules ``name`` imports, at module level or inside functions; ``from .x import y``
    counts as ``x``, or as ``x.y`` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    return (found & modules) - {name}


def test_the_import_graph_parses_relative_imports():
    modules = set(module_files())
    files = module_files()
    assert {"wavinv.errors", "wavinv.lazy", "wavinv.limits", "wavinv.location", "wavinv.params", "wavinv.schema"} <= imports_of("wavinv.store", files["wavinv.store"], modules)
    assert "wavinv.models.features" in imports_of("wavinv.generate", files["wavinv.generate"], modules)  # inside a function
    assert "wavinv.profiles" in imports_of("wavinv.bench", files["wavinv.bench"], modules)  # from a package, two dots


def test_no_two_modules_import_each_other():
    """wavinv's modules form layers: no module imports one that imports it back, through any chain."""
    files = module_files()
    graph = {name: imports_of(name, path, set(files)) for name, path in files.items()}
    for start in sorted(graph):
        path, seen = [start], set()
        stack = [iter(sorted(graph[start]))]
        while stack:  # depth first from start; a way back to start is a cycle
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                path.pop()
                continue
            assert nxt != start, "import cycle: " + " -> ".join(path + [start])
            if nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))


# the layers above the store: params <- generators <- store <- frontend/models <- inverter <- cli/benchmarks
ABOVE_THE_STORE = ("frontend", "picture", "pictures", "models", "inverter", "generate", "bench", "cli")


def test_the_store_imports_no_layer_above_it():
    """store.py knows the Zarr layout and computes no spectrogram (``pictures`` does): it imports none of
    the modules above it, at module level or inside functions, directly or through the modules it imports."""
    files = module_files()
    graph = {name: imports_of(name, path, set(files)) for name, path in files.items()}
    reached, todo = set(), ["wavinv.store"]
    while todo:
        for name in graph[todo.pop()] - reached:
            reached.add(name)
            todo.append(name)
    assert "wavinv.params" in reached and "wavinv.generators" in reached  # what it may import is seen
    above = sorted(name for name in reached if name.split(".")[1] in ABOVE_THE_STORE)
    assert above == [], f"wavinv.store reaches {above}"


# -- the README's layout table --------------------------------------------------------
def test_the_readme_layout_table_names_every_folder_and_module():
    """Every top-level folder of the repository has a row, and the ``wavinv/`` row names every module and package."""
    table = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)/` \| (.*) \|$", table, re.M)}
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: its folders are the tracked ones")
    folders = {f.split("/")[0] for f in tracked if "/" in f}
    assert folders <= set(rows), sorted(folders - set(rows))
    named = set(re.findall(r"`([a-z_]+)/?`", rows["wavinv"]))
    on_disk = {p.stem if p.is_file() else p.name for p in (ROOT / "wavinv").iterdir() if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert on_disk - {"__init__", "__main__"} <= named, sorted(on_disk - {"__init__", "__main__"} - named)
