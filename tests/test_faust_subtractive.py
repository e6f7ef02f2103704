"""The Faust plug-in (examples/faust_subtractive.py): a DSP program compiled by DawDreamer, loaded as a user would.

Needs the optional extra (``pip install -c constraints.txt -e '.[faust]'``, part of
``[dev]``); skipped where DawDreamer is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dawdreamer")

from wavinv import RenderError, load_generator, open_store  # noqa: E402
from wavinv.cli import main  # noqa: E402
from wavinv.generators import render_checked, takes_seed  # noqa: E402

FILE = Path(__file__).resolve().parent.parent / "examples" / "faust_subtractive.py"
SPEC = f"{FILE}:synth"


@pytest.fixture(scope="module")
def gen():
    return load_generator(SPEC)


def column(gen, name: str) -> int:
    return gen.space.names.index(name)


def test_it_loads_by_file_spec_with_discrete_and_log_parameters(gen):
    assert (gen.name, gen.sample_rate, gen.n_samples, len(gen.space)) == ("faust-subtractive", 16000, 16352, 37)
    scales = [p.scale for p in gen.space.params]
    assert scales.count("choice") == 4 and scales.count("int") == 2 and "log" in scales
    assert takes_seed(gen)


def test_renders_deterministic_mono_float32_whatever_came_before(gen):
    p = gen.space.sample(0, 12, seed=5)
    a = render_checked(gen, p)
    assert a.shape == (12, 16352) and a.dtype == np.float32
    assert np.isfinite(a).all() and len({row.tobytes() for row in a}) == 12
    assert render_checked(gen, p).tobytes() == a.tobytes()
    # the DSP's state (filters, delay line, envelopes, noise) starts afresh for every clip
    assert render_checked(gen, p[::-1].copy()).tobytes() == a[::-1].tobytes()
    assert render_checked(gen, p[7:8])[0].tobytes() == a[7].tobytes()


def test_the_parameters_change_the_sound(gen):
    p = np.repeat(gen.space.sample(0, 1, seed=6), 3, axis=0)
    p[1, column(gen, "note")] = 40 if p[0, column(gen, "note")] > 60 else 80
    p[2, column(gen, "cutoff")] = 100 if p[0, column(gen, "cutoff")] > 1000 else 5000
    a = render_checked(gen, p)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], a[2])


def test_seed_is_another_noise_realisation(gen):
    p = np.repeat(gen.space.sample(0, 1, seed=7), 2, axis=0)
    p[0, column(gen, "noise_level")] = 1.0
    p[1, column(gen, "noise_level")] = 0.0
    base = render_checked(gen, p)
    other = render_checked(gen, p, seed=1)
    assert not np.array_equal(base[0], other[0])
    assert np.array_equal(base[1], other[1])  # no noise in the mix: the seed changes nothing
    assert render_checked(gen, p, seed=1).tobytes() == other.tobytes()


def test_wrong_width_and_bad_seed_are_render_errors(gen):
    with pytest.raises(RenderError, match=r"params must be \(B, 37\)"):
        render_checked(gen, np.zeros((2, 5)))
    with pytest.raises(RenderError, match="seed must be in"):
        render_checked(gen, gen.space.sample(0, 1, seed=1), seed=-1)


def test_a_tiny_store_from_the_command_line(tmp_path, gen):
    out = tmp_path / "faust-24"
    assert main(["generate", "--generator", SPEC, "--n", "24", "--out", str(out), "--seed", "1", "-q"]) == 0
    assert main(["verify", "-q", str(out), "--rerender", "2", "--generator", SPEC]) == 0
    store = open_store(out)
    params = store.params()
    assert store.n == 24 and params.shape[1] == 37
    assert np.array_equal(store.waveforms()[:3], render_checked(gen, params[:3]))
