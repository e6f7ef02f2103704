"""The torchsynth plug-in (examples/torchsynth_voice.py): a generator written elsewhere, loaded as a user would.

Needs the optional extra (``pip install -c constraints.txt -e '.[examples]'``);
skipped where torchsynth is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchsynth")

from wavinv import RenderError, load_generator, open_store  # noqa: E402
from wavinv.cli import main  # noqa: E402
from wavinv.generators import render_checked, takes_seed  # noqa: E402

FILE = Path(__file__).resolve().parent.parent / "examples" / "torchsynth_voice.py"
SPEC = f"{FILE}:voice"


@pytest.fixture(scope="module")
def gen():
    return load_generator(SPEC)


def index(gen, name: str) -> int:
    return gen.space.names.index(name)


def test_it_loads_by_file_spec_with_torchsynths_parameters(gen):
    assert (gen.name, gen.sample_rate, gen.n_samples) == ("torchsynth-voice", 16000, 16352)
    names = gen.space.names
    assert len(names) == 78 and len(set(names)) == 78
    assert names[:3] == ["keyboard.midi_f0", "keyboard.duration", "adsr_1.attack"]
    assert {"mixer.noise", "vco_2.shape", "mod_matrix.lfo_1->vco_2_pitch"} <= set(names)
    assert all((p.low, p.high, p.scale) == (0.0, 1.0, "linear") for p in gen.space.params)
    assert gen.space.params[index(gen, "adsr_1.attack")].unit == "torchsynth [0, 1] -> 0..2, curve 0.5"
    assert takes_seed(gen)


def test_to_synth_units_is_torchsynths_curve():
    import importlib.util

    spec = importlib.util.spec_from_file_location("torchsynth_voice_for_test", FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = np.full((1, 78), 0.25)
    human = module.to_synth_units(row)
    assert human["adsr_1.attack"][0] == pytest.approx(2 * 0.25**2)  # 0..2 s, curve 0.5
    assert human["keyboard.midi_f0"][0] == pytest.approx(127 * 0.25)  # linear
    assert human["vco_1.mod_depth"][0] == pytest.approx(-96 + 96 * (1 - 0.5 ** (1 / 0.2)))  # symmetric, curve 0.2


def test_renders_deterministic_mono_float32_whatever_the_batch(gen):
    p = gen.space.sample(0, 37, seed=5)  # more than one torchsynth batch of 32, the last one partial
    a = render_checked(gen, p)
    assert a.shape == (37, 16352) and a.dtype == np.float32
    assert np.all(np.abs(a).max(axis=1) > 1e-3)  # sounds, not silence
    assert len({row.tobytes() for row in a}) == 37
    again = render_checked(gen, p)
    assert again.tobytes() == a.tobytes()
    alone = render_checked(gen, p[33:34])  # clip 33 alone, and the batch backwards: the same bytes
    assert alone[0].tobytes() == a[33].tobytes()
    assert render_checked(gen, p[::-1].copy()).tobytes() == a[::-1].tobytes()


def test_render_torch_is_the_render_and_has_a_gradient(gen):
    import torch

    from wavinv.gradient import differentiable

    params = np.random.default_rng(7).random((40, 78))  # more than one torchsynth batch of 32
    x = torch.tensor(params, dtype=torch.float32, requires_grad=True)
    waves = gen.render_torch(x)
    assert differentiable(gen)
    assert np.array_equal(waves.detach().numpy(), gen.render(params.astype(np.float32)))
    waves.square().mean().backward()
    grad = x.grad.numpy()
    assert np.isfinite(grad).mean() > 0.9 and np.abs(grad[np.isfinite(grad)]).sum() > 0
    moved = x.detach().clone()
    moved[:, index(gen, "keyboard.midi_f0")] += 0.1
    assert not np.array_equal(gen.render_torch(moved).numpy(), waves.detach().numpy())
    assert all("p" not in vars(m) for m in gen.render_torch.__globals__["_synth"]()[1].modules())  # torchsynth left as it was


def test_renders_on_one_thread_and_gives_the_callers_back(gen):
    import torch

    p = gen.space.sample(0, 3, seed=6)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = render_checked(gen, p)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        assert render_checked(gen, p).tobytes() == two.tobytes()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_seed_is_another_noise_realisation(gen):
    p = np.full((2, 78), 0.5)
    p[:, index(gen, "mixer.noise")] = 1.0  # loud noise
    p[1, index(gen, "mixer.noise")] = 0.0  # no noise at all (torchsynth's noise curve maps 0 to 0)
    base = render_checked(gen, p)
    other = render_checked(gen, p, seed=1)
    assert not np.array_equal(base[0], other[0])
    assert np.array_equal(base[1], other[1])
    assert render_checked(gen, p, seed=1).tobytes() == other.tobytes()


def test_wrong_width_is_a_render_error(gen):
    with pytest.raises(RenderError, match=r"params must be \(B, 78\)"):
        render_checked(gen, np.zeros((2, 5)))


def test_a_tiny_store_from_the_command_line(tmp_path, gen):
    out = tmp_path / "ts-32"
    assert main(["generate", "--generator", SPEC, "--n", "32", "--out", str(out), "--seed", "1", "-q"]) == 0
    assert main(["verify", "-q", str(out), "--rerender", "2", "--generator", SPEC]) == 0
    store = open_store(out)
    assert store.n == 32
    params = store.params()
    assert params.shape[1] == 78 and params.min() >= 0.0 and params.max() <= 1.0
    assert np.array_equal(store.waveforms()[:3], render_checked(gen, params[:3]))
