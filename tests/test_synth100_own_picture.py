"""examples/synth100_own_picture.py: synth100's sound with a picture of the user's own, end to end."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from wavinv import open_store
from wavinv.cli import main
from wavinv.generators import load_generator
from wavinv.pictures import store_picture

ROOT = Path(__file__).resolve().parent.parent
FILE = ROOT / "examples" / "synth100_own_picture.py"
SPEC = f"{FILE}:synth"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("synth100_own_picture", FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sound_is_synth100s_and_the_picture_is_its_own(example):
    gen, base = example.synth(), load_generator("synth100")
    params = base.space.from_unit(np.random.default_rng(3).random((5, len(base.space))))
    waves = gen.render(params)
    assert np.array_equal(waves, base.render(params)) and np.array_equal(gen.render(params, seed=7), base.render(params, seed=7))
    pictures = gen.spectrogram(waves)
    assert pictures.shape == (5, 512, 512) and pictures.dtype == np.float32
    assert pictures.min() >= example.FLOOR_DB and pictures.max() <= 30.0
    # a clip's picture does not depend on the clips beside it
    assert np.array_equal(gen.spectrogram(waves[2:3]), pictures[2:3])


def test_a_sine_lights_the_band_of_its_frequency_near_0_db(example):
    t = np.arange(16352) / 16000.0
    frequencies = np.geomspace(example.F_LOW, example.F_HIGH, example.N_BANDS)
    for f in (220.0, 1000.0, 5000.0):
        picture = example.picture(np.sin(2 * np.pi * f * t)[None])[0]
        peak = picture[:, 256]
        band = int(np.argmax(peak))
        assert abs(np.log2(frequencies[band] / f)) < 0.03  # within half a semitone
        assert -3.0 < peak[band] < 0.5
    silence = example.picture(np.zeros((1, 16352)))
    assert (silence == example.FLOOR_DB).all()


def test_a_store_made_with_it_pictures_its_clips_with_it(example, tmp_path):
    out = tmp_path / "store"
    assert main(["generate", "--generator", SPEC, "--n", "12", "--out", str(out), "-q"]) == 0
    store = open_store(out)
    assert store.frontend_config["kind"] == "generator"
    picture = store_picture(store, SPEC)
    waves = np.asarray(store.waveforms()[:4])
    assert np.array_equal(picture.transform(waves), example.synth().spectrogram(waves))
    assert main(["verify", str(out), "--generator", SPEC, "-q"]) == 0
