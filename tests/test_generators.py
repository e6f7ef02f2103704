"""Generator plug-in: FunctionGenerator, every load_generator form and its errors, render checks."""

import sys
import textwrap

import numpy as np
import pytest

from wavinv import FunctionGenerator, GeneratorError, Param, ParamSpace, RenderError, load_generator
from wavinv.generators import generator_identity, render_checked

SPACE = ParamSpace([Param("freq", 100.0, 1000.0, scale="log"), Param("amp", 0.0, 1.0)])


def sine(params):
    t = np.arange(256) / 8000.0
    return (params[:, 1:2] * np.sin(2 * np.pi * params[:, 0:1] * t)).astype(np.float32)


def make_gen(render=sine):
    return FunctionGenerator(SPACE, render, sample_rate=8000, n_samples=256, name="sine", version="2")


MODULE_SRC = textwrap.dedent(
    """
    import numpy as np
    from wavinv import FunctionGenerator, Param, ParamSpace

    SPACE = ParamSpace([Param("freq", 100.0, 1000.0, scale="log"), Param("amp", 0.0, 1.0)])

    def _render(p):
        t = np.arange(256) / 8000.0
        return (p[:, 1:2] * np.sin(2 * np.pi * p[:, 0:1] * t)).astype(np.float32)

    gen = FunctionGenerator(SPACE, _render, sample_rate=8000, n_samples=256, name="sine")

    def factory():
        return gen

    def broken_factory():
        raise RuntimeError("no licence")

    not_a_generator = 42
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usersynth.py").write_text(MODULE_SRC)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("usersynth", None)


def test_function_generator_renders_and_identifies():
    gen = make_gen()
    p = SPACE.sample(0, 4, seed=0)
    out = render_checked(gen, p)
    assert out.shape == (4, 256) and out.dtype == np.float32
    ident = generator_identity(gen, spec="x.py:gen")
    assert ident["fingerprint"] == SPACE.fingerprint and ident["version"] == "2" and ident["spec"] == "x.py:gen"


def test_builtin_name_loads_synth100():
    gen = load_generator("synth100")
    assert gen.name == "synth100" and len(gen.space) == 100


@pytest.mark.parametrize("attr", ["gen", "factory"])
def test_module_and_file_specs(user_module, attr):
    by_module = load_generator(f"usersynth:{attr}")
    by_file = load_generator(f"{user_module / 'usersynth.py'}:{attr}")
    p = SPACE.sample(0, 3, seed=1)
    np.testing.assert_array_equal(by_module.render(p), by_file.render(p))


def test_a_generator_object_passes_through():
    gen = make_gen()
    assert load_generator(gen) is gen


@pytest.mark.parametrize(
    "spec, match",
    [
        ("nosuchsynth", "unknown generator"),
        ("no_such_module_xyz:gen", "cannot import module"),
        ("usersynth:missing", "no attribute"),
        ("usersynth:not_a_generator", "not a generator"),
        ("usersynth:broken_factory", "no licence"),
        ("does/not/exist.py:gen", "not found"),
    ],
)
def test_bad_specs_raise_generator_error(user_module, spec, match):
    with pytest.raises(GeneratorError, match=match):
        load_generator(spec)


def test_a_file_that_fails_to_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise ImportError('needs a dongle')\n")
    with pytest.raises(GeneratorError, match="dongle"):
        load_generator(f"{bad}:gen")


@pytest.mark.parametrize(
    "render, match",
    [
        (lambda p: sine(p)[:, :100], r"shape \(3, 100\)"),
        (lambda p: sine(p).astype(np.float64), "dtype float64"),
        (lambda p: np.where(np.arange(3)[:, None] == 2, np.nan, sine(p)).astype(np.float32), "sample 12 contains NaN"),
        (lambda p: np.where(np.arange(3)[:, None] == 0, np.inf, sine(p)).astype(np.float32), "sample 10 contains NaN or Inf"),
        (lambda p: [0.0], "returned list"),
        (lambda p: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_render_validation_names_the_sample(render, match):
    gen = make_gen(render)
    with pytest.raises(RenderError, match=match):
        render_checked(gen, SPACE.sample(10, 13, seed=0), offset=10)


def test_function_generator_rejects_bad_arguments():
    with pytest.raises(GeneratorError, match="ParamSpace"):
        FunctionGenerator([Param("a", 0.0, 1.0)], sine, 8000, 256, "x")
    with pytest.raises(GeneratorError, match="positive int"):
        FunctionGenerator(SPACE, sine, 8000, 0, "x")


def test_portable_spec_records_what_loads_from_any_folder(user_module, monkeypatch):
    from wavinv.generators import portable_spec

    monkeypatch.chdir(user_module)
    assert portable_spec("usersynth.py:gen") == (f"{user_module.resolve() / 'usersynth.py'}:gen", None)
    assert portable_spec("synth100") == ("synth100", None)
    load_generator("usersynth:gen")  # a module found through the current folder
    spec, caveat = portable_spec("usersynth:gen")
    assert spec == "usersynth:gen" and "PYTHONPATH" in caveat
    monkeypatch.chdir(user_module.parent)
    assert portable_spec("usersynth:gen") == ("usersynth:gen", None)  # from elsewhere it is found on sys.path
