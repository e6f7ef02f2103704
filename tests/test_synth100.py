"""The built-in synthesizer: contract, determinism, bounds, and that every parameter matters."""

from __future__ import annotations

import numpy as np
import pytest

from wavinv import ParamSpaceError, load_generator
from wavinv.generators import check_generator, render_checked
from wavinv.generators.synth100 import PARAMS, THREAD_ROWS, Synth100

# A patch where every part of the voice is audible, so each parameter has something to change.
RICH = {
    "note": 50, "velocity": 0.7, "gate": 0.5,
    "tune": 10.0, "pitch_env_amount": 5.0, "pitch_env_decay": 0.1, "pitch_env_target": 0,
    "glide_semitones": 3, "glide_time": 0.1,
    "vibrato_rate": 5.0, "vibrato_depth": 0.5, "vibrato_delay": 0.05,
    "osc1_wave": 2.5, "osc1_pw": 0.3, "osc1_octave": 0, "osc1_detune": 5.0, "osc1_phase": 0.2, "osc1_level": 0.8,
    "osc2_wave": 2.5, "osc2_pw": 0.3, "osc2_octave": 0, "osc2_semi": 7, "osc2_detune": -5.0, "osc2_phase": 0.4,
    "osc2_keytrack": 1, "osc2_level": 0.6,
    "osc3_wave": 2.5, "osc3_pw": 0.3, "osc3_octave": -1, "osc3_semi": 0, "osc3_detune": 3.0, "osc3_phase": 0.6,
    "osc3_keytrack": 1, "osc3_level": 0.5,
    "sub_level": 0.5, "sub_wave": 0, "unison_detune": 10.0, "unison_mix": 0.5,
    "ring_level": 0.3, "xmod": 0.5, "drift": 0.5,
    "fm_depth": 2.0, "fm_ratio": 2.0, "fm_fine": 0.05, "fm_env_amount": 0.5, "fm_env_decay": 0.3,
    "fm_to_osc2": 0.5, "fm_velocity": 0.5, "fm_keyscale": 0.5,
    "noise_level": 0.3, "noise_color": 0.3, "noise_decay": 0.5, "noise_post": 0.3,
    "filter_type": 0, "filter_cutoff": 1500.0, "filter_resonance": 0.5, "filter_env_amount": 2.0,
    "filter_keytrack": 0.5, "filter_velocity": 0.5, "filter_drive": 0.3, "hpf_cutoff": 50.0,
    "fenv_attack": 0.01, "fenv_decay": 0.2, "fenv_sustain": 0.5, "fenv_release": 0.2,
    "amp_attack": 0.01, "amp_hold": 0.05, "amp_decay": 0.2, "amp_sustain": 0.6, "amp_release": 0.2,
    "amp_velocity": 0.5,
    "modenv_attack": 0.01, "modenv_decay": 0.2, "modenv_to_osc2_pitch": 3.0, "env_keyscale": 0.5,
    "lfo1_rate": 3.0, "lfo1_shape": 0, "lfo1_fade": 0.1, "lfo1_phase": 0.2, "lfo1_to_pitch": 0.3,
    "lfo1_to_filter": 0.5, "lfo1_to_amp": 0.3, "lfo1_to_fm": 0.3,
    "lfo2_rate": 2.0, "lfo2_shape": 1, "lfo2_fade": 0.1, "lfo2_phase": 0.3, "lfo2_to_osc2_pitch": 0.3,
    "lfo2_to_filter": 0.5, "lfo2_to_resonance": 0.3, "lfo2_to_noise": 0.3,
    "drive": 0.3, "chorus_mix": 0.5, "chorus_rate": 1.0, "chorus_depth": 0.5, "chorus_delay": 10.0,
    "delay_mix": 0.3, "delay_time": 0.15, "delay_feedback": 0.4, "volume": -12.0,
}  # fmt: skip

# Setting the keys of an enabler to these values silences every parameter listed with it.
DEPENDENT = [
    ({"pitch_env_amount": 0.0}, ["pitch_env_decay", "pitch_env_target"]),
    ({"glide_semitones": 0}, ["glide_time"]),
    ({"vibrato_depth": 0.0}, ["vibrato_rate", "vibrato_delay"]),
    ({"osc1_wave": 0.0}, ["osc1_pw"]),  # a sine has no pulse width
    ({"osc1_level": 0.0, "sub_level": 0.0, "fm_depth": 0.0},
     ["osc1_wave", "osc1_pw", "osc1_octave", "osc1_detune", "osc1_phase", "sub_wave", "unison_detune",
      "unison_mix", "ring_level", "xmod"]),
    ({"osc2_level": 0.0},
     ["osc2_wave", "osc2_pw", "osc2_octave", "osc2_semi", "osc2_detune", "osc2_phase", "osc2_keytrack",
      "ring_level", "fm_to_osc2", "lfo2_to_osc2_pitch", "modenv_to_osc2_pitch"]),
    ({"osc3_level": 0.0},
     ["osc3_wave", "osc3_pw", "osc3_octave", "osc3_semi", "osc3_detune", "osc3_phase", "osc3_keytrack", "xmod"]),
    ({"sub_level": 0.0}, ["sub_wave"]),
    ({"unison_mix": 0.0}, ["unison_detune"]),
    ({"fm_depth": 0.0},
     ["fm_ratio", "fm_fine", "fm_env_amount", "fm_env_decay", "fm_to_osc2", "fm_velocity", "fm_keyscale",
      "lfo1_to_fm"]),
    ({"fm_env_amount": 0.0}, ["fm_env_decay"]),
    ({"noise_level": 0.0}, ["noise_color", "noise_decay", "noise_post", "lfo2_to_noise"]),
    ({"filter_env_amount": 0.0}, ["fenv_attack", "fenv_decay", "fenv_sustain", "fenv_release", "filter_velocity"]),
    ({"modenv_to_osc2_pitch": 0.0}, ["modenv_attack", "modenv_decay"]),
    ({"lfo1_to_pitch": 0.0, "lfo1_to_filter": 0.0, "lfo1_to_amp": 0.0, "lfo1_to_fm": 0.0},
     ["lfo1_rate", "lfo1_shape", "lfo1_fade", "lfo1_phase"]),
    ({"lfo2_to_osc2_pitch": 0.0, "lfo2_to_filter": 0.0, "lfo2_to_resonance": 0.0, "lfo2_to_noise": 0.0},
     ["lfo2_rate", "lfo2_shape", "lfo2_fade", "lfo2_phase"]),
    ({"chorus_mix": 0.0}, ["chorus_rate", "chorus_depth", "chorus_delay"]),
    ({"delay_mix": 0.0}, ["delay_time", "delay_feedback"]),
    ({"velocity": 1.0}, ["amp_velocity", "filter_velocity", "fm_velocity"]),
    ({"note": 60}, ["filter_keytrack", "env_keyscale", "fm_keyscale", "osc2_keytrack", "osc3_keytrack"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def synth() -> Synth100:
    return load_generator("synth100")


def ends(p) -> tuple[float, float]:
    return (p.choices[0], p.choices[-1]) if p.scale == "choice" else (p.low, p.high)


def pairs_batch(space, settings: list[tuple[dict, str]]) -> np.ndarray:
    """For each (overrides, name): RICH + overrides with ``name`` low, then high.

    Low and high are 10% and 90% of the unit range (the ends of a phase are the same phase).
    """
    rows = []
    for overrides, name in settings:
        for value in space[name].from_unit(np.array([0.1, 0.9])):
            rows.append(space.from_dict({**RICH, **overrides, name: value}))
    return np.array(rows)


def test_protocol_and_space(synth):
    assert isinstance(synth, Synth100)
    check_generator(synth)
    assert (synth.name, synth.version, synth.sample_rate, synth.n_samples) == ("synth100", "1", 16000, 16352)
    assert synth.n_samples == 511 * 32
    names = synth.space.names
    assert len(names) == 100 == len(set(names)) == len(PARAMS)
    assert set(RICH) == set(names)
    for p in synth.space:
        if p.name.endswith(("_rate", "_time", "_attack", "_decay", "_release", "_cutoff")):
            assert p.scale == "log", p.name
    assert synth.space["note"].scale == "int" and synth.space["filter_type"].scale == "choice"


def test_same_params_same_bytes(synth):
    x = synth.space.sample(0, 6, seed=11)
    assert synth.render(x).tobytes() == synth.render(x).tobytes()


def test_batch_composition_does_not_change_a_clip(synth):
    x = synth.space.sample(0, 16, seed=5)
    batch = synth.render(x)
    for i in range(len(x)):
        assert synth.render(x[i : i + 1])[0].tobytes() == batch[i].tobytes(), f"row {i}"
    assert synth.render(x[3:11]).tobytes() == batch[3:11].tobytes()
    assert synth.render(x[::-1])[::-1].tobytes() == batch.tobytes()
    # threads and block size only split the work
    other = Synth100(threads=1, block=3)
    assert other.render(x).tobytes() == batch.tobytes()
    # a batch big enough to be spread over threads gives the same bytes as one thread
    many = synth.space.sample(0, 2 * THREAD_ROWS + 5, seed=6)
    assert Synth100(threads=2, block=16).render(many).tobytes() == Synth100(threads=1).render(many).tobytes()
    assert synth.render(x[:0]).shape == (0, synth.n_samples)


def test_random_samples_render_checked(synth):
    x = synth.space.sample(0, 48, seed=1)
    y = render_checked(synth, x)
    assert y.dtype == np.float32 and y.shape == (48, synth.n_samples)
    assert np.abs(y).max() <= 0.99 + 1e-6
    assert (np.abs(y).max(axis=1) > 1e-4).mean() > 0.9  # random patches make sound


def test_extreme_corners_are_finite_and_bounded(synth):
    space = synth.space
    low = np.array([ends(p)[0] for p in space])
    high = np.array([ends(p)[1] for p in space])
    rng = np.random.default_rng(0)
    corners = np.where(rng.random((96, len(space))) < 0.5, low, high)
    y = render_checked(synth, np.vstack([low, high, corners]))
    assert np.isfinite(y).all()
    assert np.abs(y).max() <= 0.99 + 1e-6


def test_out_of_range_values_are_clipped_and_bad_input_raises(synth):
    x = synth.space.sample(0, 2, seed=2)
    wild = x.copy()
    wild[:, synth.space.index("filter_cutoff")] = [1e-3, 1e9]
    wild[:, synth.space.index("fm_ratio")] = [0.49, 100.0]
    y = render_checked(synth, wild)
    assert np.isfinite(y).all()
    with pytest.raises(ParamSpaceError):
        synth.render(x[:, :99])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ParamSpaceError):
        synth.render(bad)


def test_every_parameter_changes_the_sound(synth):
    space = synth.space
    y = synth.render(pairs_batch(space, [({}, name) for name in space.names]))
    lo, hi = y[0::2], y[1::2]
    rms = np.sqrt(np.mean((hi - lo) ** 2, axis=1))
    scale = np.sqrt(np.mean(lo**2, axis=1)) + 1e-6
    dead = [name for name, r, s in zip(space.names, rms, scale) if r < 1e-2 * s]
    assert not dead, f"parameters with no audible effect from the rich patch: {dead}"
    assert np.abs(y).max(axis=1).min() > 1e-3  # the rich patch sounds


def test_dependent_parameters_are_silent_when_their_enabler_is_off(synth):
    settings = [(enabler, name) for enabler, names in DEPENDENT for name in names]
    y = synth.render(pairs_batch(synth.space, settings))
    same = [(y[2 * i].tobytes() == y[2 * i + 1].tobytes()) for i in range(len(settings))]
    leaks = [f"{name} (with {enabler})" for (enabler, name), s in zip(settings, same) if not s]
    assert not leaks, f"parameters that still change the sound: {leaks}"
    # and each enabler really is the switch: with the rich patch they do change it
    y = synth.render(pairs_batch(synth.space, [({}, name) for _, names in DEPENDENT for name in names]))
    assert all(y[2 * i].tobytes() != y[2 * i + 1].tobytes() for i in range(len(y) // 2))


def test_note_sets_the_pitch(synth):
    base = {**RICH, **{k: 0.0 for k in ("osc2_level", "osc3_level", "sub_level", "unison_mix", "fm_depth",
                                          "noise_level", "pitch_env_amount", "vibrato_depth", "drift", "tune",
                                          "osc1_detune", "lfo1_to_pitch", "chorus_mix", "delay_mix")},
            "glide_semitones": 0, "osc1_wave": 0.0, "filter_cutoff": 7000.0, "filter_env_amount": 0.0}
    x = np.array([synth.space.from_dict({**base, "note": n}) for n in (57, 69)])
    y = synth.render(x)
    seg = y[:, 4000:12000] * np.hanning(8000)
    peaks = np.argmax(np.abs(np.fft.rfft(seg, n=1 << 16)), axis=1) * synth.sample_rate / (1 << 16)
    assert peaks == pytest.approx([220.0, 440.0], rel=2e-3)


def test_oscillators_and_fm_are_band_limited(synth):
    """Steady tones put (almost) all their energy on harmonics of the note: no gross aliasing."""
    plain = {**RICH, **{k: 0.0 for k in (
        "osc2_level", "osc3_level", "sub_level", "unison_mix", "fm_depth", "noise_level", "pitch_env_amount",
        "vibrato_depth", "drift", "tune", "osc1_detune", "lfo1_to_pitch", "lfo1_to_filter", "lfo1_to_amp",
        "lfo1_to_fm", "lfo2_to_filter", "chorus_mix", "delay_mix", "filter_env_amount", "drive", "filter_drive",
        "ring_level", "xmod", "fm_env_amount", "fm_fine")},
        "glide_semitones": 0, "filter_cutoff": 7000.0, "filter_resonance": 0.0, "hpf_cutoff": 10.0, "gate": 0.9,
        "amp_sustain": 1.0}  # fmt: skip
    cases = [
        {"note": 84, "osc1_octave": 1, "osc1_wave": 2.0},  # saw at 2093 Hz: 3 harmonics below Nyquist
        {"note": 84, "osc1_octave": 0, "osc1_wave": 3.0, "osc1_pw": 0.1},  # narrow pulse
        {"note": 60, "osc1_octave": 0, "osc1_wave": 2.0, "fm_depth": 6.0, "fm_ratio": 3.0},  # FM on a saw
        {"note": 72, "osc1_octave": 0, "osc1_wave": 0.0, "fm_depth": 6.0, "fm_ratio": 7.0},  # FM near Nyquist
    ]
    y = synth.render(np.array([synth.space.from_dict({**plain, **c}) for c in cases]))
    n = 1 << 17
    f = np.fft.rfftfreq(n, 1 / synth.sample_rate)
    for case, clip in zip(cases, y):
        power = np.abs(np.fft.rfft(clip[4000:14000] * np.blackman(10000), n=n)) ** 2
        f0 = 440.0 * 2 ** ((case["note"] - 69) / 12)
        on_harmonic = np.abs(f / f0 - np.round(f / f0)) * f0 < 15.0
        off_db = 10 * np.log10(power[~on_harmonic].sum() / power.sum())
        assert off_db < -45.0, (case, off_db)
