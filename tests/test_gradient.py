"""The gradient stage (wavinv.gradient): descent through a generator's differentiable render."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wavinv import FunctionGenerator, InputError, Param, ParamSpace
from wavinv.errors import GeneratorError
from wavinv.gradient import descend, differentiable, natural_torch
from wavinv.metrics import lsd_db

sys.path.insert(0, str(Path(__file__).resolve().parent))
import toygen  # noqa: E402

TOY = Path(toygen.__file__)


def test_render_torch_is_the_render():
    params = toygen.SPACE.from_unit(np.random.default_rng(0).random((6, 3)))
    ours = toygen.differentiable.render_torch(torch.as_tensor(params)).numpy()
    assert np.allclose(ours, toygen.differentiable.render(params), atol=1e-5)
    assert differentiable(toygen.differentiable) and not differentiable(toygen.toy)


def test_render_torch_must_be_callable():
    with pytest.raises(GeneratorError, match="render_torch"):
        FunctionGenerator(toygen.SPACE, toygen.render_clips, 8000, toygen.N_SAMPLES, "toy", render_torch="not code")


def test_natural_torch_maps_like_the_space():
    unit = np.random.default_rng(1).random((5, 3))
    fixed = toygen.SPACE.from_unit(unit)
    out = natural_torch(toygen.SPACE, torch.as_tensor(unit), fixed).numpy()
    assert np.allclose(out, fixed)  # linear and log by formula, the choice column as given


# a smooth sound: a decaying sine at one of three pitches (a choice: held), its level and decay free
SMOOTH = ParamSpace([Param("freq", choices=[220.0, 440.0, 880.0]), Param("amp", 0.05, 1.0), Param("decay", 1.0, 50.0, scale="log")])


def _smooth(params):
    t = torch.arange(toygen.N_SAMPLES, dtype=params.dtype) / 8000.0
    return params[:, 1:2] * torch.exp(-params[:, 2:3] * t) * torch.sin(2 * torch.pi * params[:, 0:1] * t)


def test_descend_moves_towards_the_target_and_holds_the_choice(toy_inverter):
    inv, _ = toy_inverter
    module = inv.frontend_module()  # 1024 samples at 8 kHz, as SMOOTH renders

    def picture(unit):
        return inv.spectrograms(_smooth(torch.as_tensor(SMOOTH.from_unit(unit))).numpy().astype(np.float32))

    truth = np.array([[0.5, 0.6, 0.7]])
    reference = picture(truth)[0]
    start = np.array([[0.5, 0.2, 0.3]])  # the right pitch, too quiet, decaying too slowly
    x, f = descend(SMOOTH, _smooth, module, reference, start, 40, lr=0.03)
    assert x.shape == (40, 3) and f.shape == (40,)
    assert f[0] == pytest.approx(float(lsd_db(reference, picture(start)[0])), rel=1e-3)
    best = x[np.argmin(f)]
    assert f.min() < 0.3 * f[0]
    assert np.abs(best[1:] - truth[0, 1:]).max() < 0.5 * np.abs(start[0, 1:] - truth[0, 1:]).min()
    assert np.all(x[:, 0] == 0.5)  # a choice never moves


def test_a_start_that_cannot_be_rendered_stops_and_the_others_go_on(toy_inverter):
    inv, _ = toy_inverter

    def loud_fails(params):  # NaN wherever amp > 0.9 (natural units): a corner the generator cannot render
        out = _smooth(params)
        return torch.where(params[:, 1:2] > 0.9, torch.full_like(out, float("nan")), out)

    reference = inv.spectrograms(_smooth(torch.as_tensor(SMOOTH.from_unit(np.array([[0.5, 0.6, 0.7]])))).numpy().astype(np.float32))[0]
    starts = np.array([[0.5, 0.99, 0.5], [0.5, 0.2, 0.3]])
    x, f = descend(SMOOTH, loud_fails, inv.frontend_module(), reference, starts, 6, lr=0.03)
    assert np.all(np.isnan(f[0::2])) and np.all(np.isfinite(f[1::2]))
    assert np.all(x[0::2] == x[0]) and not np.all(x[1::2] == x[1])
    assert f[1::2][-1] < f[1]


@pytest.mark.parametrize("steps", [0, -1, True, 2.5])
def test_descend_refuses_bad_steps(toy_inverter, steps):
    inv, target = toy_inverter
    with pytest.raises(InputError, match="steps"):
        descend(toygen.SPACE, toygen._render_torch, inv.frontend_module(), np.zeros((2, 2)), np.zeros((1, 3)), steps)


def test_invert_with_gradient_counts_its_renders_and_repeats(toy_inverter):
    inv, target = toy_inverter
    inv.attach(toygen.differentiable)
    try:
        kwargs = dict(n=4, draws=16, random_state=3, refine=200, refine_options={"gradient": 10, "gradient_starts": 2, "spread": False})
        a = inv.invert(target, **kwargs)
        b = inv.invert(target, **kwargs)
        assert np.array_equal(a.params, b.params)
        assert a.n_renders <= 16 + 200
        assert a.timing["gradient"] > 0
        plain = inv.invert(target, n=4, draws=16, random_state=3, refine=200, refine_options={"spread": False})
        assert "gradient" not in plain.timing
    finally:
        inv.attach(toygen.toy)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"gradient": 10}, "render_torch"),  # the toy as attached has no differentiable render
        ({"gradient": -3}, "gradient must be"),
        ({"gradient": True}, "gradient must be"),
        ({"gradient": 5, "gradient_starts": 1.5}, "gradient_starts must be"),
    ],
)
def test_invert_refuses_a_gradient_it_cannot_take(toy_inverter, options, match):
    inv, target = toy_inverter
    with pytest.raises(InputError, match=match):
        inv.invert(target, n=4, draws=16, random_state=0, refine=100, refine_options=options)


@pytest.mark.parametrize(
    "render_torch, match",
    [
        (lambda p: toygen._render_torch(p).detach(), "no gradient"),
        (lambda p: toygen._render_torch(p).detach().numpy(), "expected a tensor"),
        (lambda p: toygen._render_torch(p)[:, :-1], "expected a tensor of shape"),
        (toygen._torch_fails, "render_torch failed: ZeroDivisionError"),
    ],
)
def test_a_broken_render_torch_is_a_render_error(toy_inverter, render_torch, match):
    from wavinv import RenderError

    inv, target = toy_inverter
    inv.attach(FunctionGenerator(toygen.SPACE, toygen.render_clips, 8000, toygen.N_SAMPLES, "toy", "1", render_torch=render_torch))
    try:
        with pytest.raises(RenderError, match=match):
            inv.invert(target, n=4, draws=16, random_state=0, refine=100, refine_options={"gradient": 5})
    finally:
        inv.attach(toygen.toy)


def test_invert_refuses_more_gradient_renders_than_the_budget(toy_inverter):
    inv, target = toy_inverter
    inv.attach(toygen.differentiable)
    try:
        with pytest.raises(InputError, match="more than the search"):
            inv.invert(target, n=4, draws=16, random_state=0, refine=100, refine_options={"gradient": 60, "gradient_starts": 4})
    finally:
        inv.attach(toygen.toy)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter

    tmp = tmp_path_factory.mktemp("cli")
    store = generate(tmp / "store", f"{TOY}:toy", n=64, seed=0, progress=False)
    fit_inverter(store, "prior", "spectrogram", progress=False).save(tmp / "model.joblib")
    np.save(tmp / "target.npy", store.waveforms("test")[0])
    return tmp


def _invert(tmp, generator: str, *extra: str) -> list[str]:
    return ["invert", "--model", str(tmp / "model.joblib"), "--generator", f"{TOY}:{generator}", "--target", str(tmp / "target.npy"),
            "--n", "2", "--draws", "8", "--no-chance", "-q", "--out", str(tmp / "c.json"), *extra]


@pytest.mark.parametrize(
    "generator, extra, message",
    [
        ("differentiable", ["--gradient", "5"], "needs a search to start from"),
        ("toy", ["--refine", "100", "--gradient", "5"], "render_torch"),
        ("differentiable", ["--refine", "100", "--gradient", "60"], "more than the search"),
        ("differentiable", ["--refine", "100", "--gradient", "-1"], "--gradient"),
        ("torch_fails", ["--refine", "100", "--gradient", "5"], "render_torch failed"),
    ],
)
def test_cli_refuses_a_gradient_in_one_line(model_files, capsys, generator, extra, message):
    from wavinv.cli import main

    (model_files / "c.json").write_text("an earlier answer")
    assert main(_invert(model_files, generator, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert (model_files / "c.json").read_text() == "an earlier answer"


def test_cli_inverts_with_a_gradient(model_files, capsys):
    from wavinv.cli import main

    assert main(_invert(model_files, "differentiable", "--refine", "120", "--gradient", "6")) == 0
    answer = json.loads((model_files / "c.json").read_text())
    assert len(answer["candidates"]) == 2 and answer["renders"] <= 8 + 120 and answer["timing_s"]["gradient"] > 0


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    from wavinv.generate import generate

    return generate(tmp_path_factory.mktemp("bench") / "toy", f"{TOY}:toy", 80, progress=False)


BENCH = {"profile": "test", "methods": "knn", "inputs": "spectrogram", "refine": 60, "progress": False}


def test_bench_adds_a_gradient_twin_to_each_refine_row(toy_store, tmp_path):
    from wavinv.bench import bench

    res = bench(toy_store, tmp_path / "out", generator=f"{TOY}:differentiable", gradient=4, **BENCH)
    labels = [r["method"] for r in res.rows]
    assert "knn+refine" in labels and "knn+refine+gradient" in labels
    ev = json.loads((tmp_path / "out" / "evals" / "knn+refine+gradient-spectrogram.json").read_text())
    assert ev["key"]["gradient"]["steps"] == 4
    assert all(rec["n_renders"] <= res.meta["settings"]["draws"] + 60 for rec in ev["targets"].values())
    assert "--gradient 4" in res.meta["command"]
    assert "+refine+gradient" in (tmp_path / "out" / "results.md").read_text()


@pytest.mark.parametrize(
    "generator, extra, match",
    [
        ("toy", {"gradient": 4}, "render_torch"),
        ("differentiable", {"gradient": 4, "refine": 0}, "follows a search"),
        ("differentiable", {"gradient": -1}, "gradient"),
        ("differentiable", {"gradient": 20}, "more than the search"),  # 20 steps x 4 points > refine 60
    ],
)
def test_bench_refuses_a_gradient_before_any_work(toy_store, tmp_path, generator, extra, match):
    from wavinv.bench import bench

    with pytest.raises(InputError, match=match):
        bench(toy_store, tmp_path / "out", generator=f"{TOY}:{generator}", **{**BENCH, **extra})
    assert not (tmp_path / "out").exists()


def test_a_model_on_the_generators_own_picture_refuses_a_gradient(tmp_path):
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    store = generate(tmp_path / "s", f"{TOY}:pictured", n=48, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram", progress=False, generator=f"{TOY}:pictured")
    both = FunctionGenerator(toygen.SPACE, toygen.render_clips, 8000, toygen.N_SAMPLES, "toy", "1", spectrogram=toygen.log_picture,
                             spectrogram_range=(toygen.PICTURE_FLOOR, 0.0), render_torch=toygen._render_torch)
    inv.attach(both)
    with pytest.raises(InputError, match="own frontend"):
        inv.invert(Target("waveform", store.waveforms("test")[0], "t"), n=2, draws=8, random_state=0, refine=100, refine_options={"gradient": 5})
