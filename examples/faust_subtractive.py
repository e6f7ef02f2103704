"""A subtractive synth written in Faust, run offline by DawDreamer: a third generator, 37 parameters.

Two oscillators with a choice of waveform, a sub-oscillator, seeded white noise,
ring modulation, a multimode resonant filter with its own ADSR and key
tracking, an amplifier ADSR, a pitch envelope, an LFO to pitch, cutoff and
amplitude, a cubic drive and a feedback delay. The DSP is the Faust program in
``DSP`` below, built only from Faust's standard libraries (``stdfaust.lib``, as
bundled with DawDreamer); DawDreamer compiles it with LLVM once per process and
renders one clip per call.

Install: ``pip install -c constraints.txt -e '.[faust]'`` (DawDreamer 0.9.0,
GPL-3.0, https://github.com/DBraun/DawDreamer; a 40 MB wheel with Faust inside).

Use: ``wavinv generate --generator examples/faust_subtractive.py:synth ...``.

Parameters are in natural units (Hz, seconds, semitones, 0..1 levels); six are
discrete: the two oscillators' and the LFO's waveforms and the filter type are
choices, the note and the second oscillator's transposition are integers. The note is held
for ``note_length`` seconds, then released.

Sound: 16 kHz, 16,352 samples (1.022 s, wavinv's 512 x 512 picture exactly),
mono float32. Determinism: DawDreamer clears the DSP's state at every render,
so a clip depends on its parameters only, never on the clip rendered before it.
The only randomness is the noise oscillator, a 32-bit linear congruential
generator (Faust's ``no.noise``) whose first value is offset by ``seed``: the
default ``seed=None`` is Faust's own sequence, ``render(params, seed=s)``
another realisation.
"""

from __future__ import annotations

import atexit
import functools
import threading

import numpy as np

from wavinv import FunctionGenerator, Param, ParamSpace

SAMPLE_RATE = 16000
N_SAMPLES = 16352  # 511 x 32: exactly 512 x 512 with wavinv's default frontend
BLOCK = 512  # DawDreamer's block size (it renders whole blocks; the clip is cut to N_SAMPLES)

SPACE = ParamSpace(
    [
        Param("note", 36, 84, scale="int", unit="MIDI"),
        Param("velocity", 0.2, 1.0),
        Param("osc1_wave", choices=[0, 1, 2, 3], unit="sine, triangle, saw, pulse"),
        Param("osc1_pulse_width", 0.1, 0.9),
        Param("osc1_level", 0.0, 1.0),
        Param("osc2_wave", choices=[0, 1, 2, 3], unit="sine, triangle, saw, pulse"),
        Param("osc2_semitones", -12, 12, scale="int", unit="semitones"),
        Param("osc2_detune", -50.0, 50.0, unit="cents"),
        Param("osc2_level", 0.0, 1.0),
        Param("sub_level", 0.0, 1.0),
        Param("noise_level", 0.0, 1.0),
        Param("ring_mix", 0.0, 1.0),
        Param("filter_type", choices=[0, 1, 2], unit="lowpass, bandpass, highpass"),
        Param("cutoff", 60.0, 7000.0, scale="log", unit="Hz"),
        Param("resonance", 0.5, 12.0, scale="log", unit="Q"),
        Param("key_tracking", 0.0, 1.0),
        Param("filter_env_amount", -4.0, 4.0, unit="octaves"),
        Param("filter_attack", 0.001, 1.0, scale="log", unit="s"),
        Param("filter_decay", 0.01, 2.0, scale="log", unit="s"),
        Param("filter_sustain", 0.0, 1.0),
        Param("filter_release", 0.01, 2.0, scale="log", unit="s"),
        Param("amp_attack", 0.001, 1.0, scale="log", unit="s"),
        Param("amp_decay", 0.01, 2.0, scale="log", unit="s"),
        Param("amp_sustain", 0.0, 1.0),
        Param("amp_release", 0.01, 2.0, scale="log", unit="s"),
        Param("note_length", 0.1, 1.0, unit="s"),
        Param("pitch_env_amount", -12.0, 12.0, unit="semitones"),
        Param("pitch_env_decay", 0.005, 0.5, scale="log", unit="s"),
        Param("lfo_rate", 0.1, 20.0, scale="log", unit="Hz"),
        Param("lfo_wave", choices=[0, 1, 2], unit="sine, triangle, square"),
        Param("lfo_to_pitch", 0.0, 2.0, unit="semitones"),
        Param("lfo_to_cutoff", 0.0, 2.0, unit="octaves"),
        Param("lfo_to_amp", 0.0, 1.0),
        Param("drive", 0.0, 1.0),
        Param("delay_time", 0.02, 0.3, unit="s"),
        Param("delay_feedback", 0.0, 0.8),
        Param("delay_mix", 0.0, 0.5),
    ]
)


def _slider(p: Param) -> str:
    return f'{p.name} = hslider("{p.name}", {p.low!r}, {p.low!r}, {p.high!r}, 0);'


DSP = "\n".join(
    ['import("stdfaust.lib");']
    + [_slider(p) for p in SPACE.params]
    + [
        'noise_seed = hslider("noise_seed", 0, 0, 2147483647, 1);',
        """
// Faust's no.noise with its first value offset by the seed
noise = (+(12345 + int(noise_seed) * (1 - 1')) ~ *(1103515245)) / 2147483647.0;
t = float(ba.time) / ma.SR;
gate = t < note_length;
lfo = ba.selectn(3, int(lfo_wave), os.osc(lfo_rate), os.lf_triangle(lfo_rate), os.lf_squarewave(lfo_rate));
pitch = note + pitch_env_amount * exp(0 - t / pitch_env_decay) + lfo_to_pitch * lfo;
f1 = ba.midikey2hz(pitch);
f2 = f1 * pow(2, (osc2_semitones + osc2_detune / 100) / 12);
wave(w, f) = ba.selectn(4, int(w), os.osc(f), os.triangle(f), os.sawtooth(f), os.pulsetrain(f, osc1_pulse_width));
o1 = wave(osc1_wave, f1);
o2 = wave(osc2_wave, f2);
dry = osc1_level * o1 + osc2_level * o2 + sub_level * os.osc(f1 / 2) + noise_level * noise;
mixed = (1 - ring_mix) * dry + ring_mix * o1 * o2;
fenv = en.adsr(filter_attack, filter_decay, filter_sustain, filter_release, gate);
fc = cutoff * pow(2, filter_env_amount * fenv + lfo_to_cutoff * lfo) * pow(f1 / 261.63, key_tracking)
     : max(30) : min(0.45 * ma.SR);
filtered = mixed <: fi.resonlp(fc, resonance, 1), fi.resonbp(fc, resonance, 1), fi.resonhp(fc, resonance, 1)
           : ba.selectn(3, int(filter_type));
aenv = en.adsr(amp_attack, amp_decay, amp_sustain, amp_release, gate);
amp = velocity * aenv * (1 - lfo_to_amp * (0.5 + 0.5 * lfo));
voice = filtered * amp * 0.5 : ef.cubicnl(drive, 0);
echo = + ~ (de.fdelay(8192, delay_time * ma.SR) * delay_feedback);
process = voice <: _, echo : *(1 - delay_mix), *(delay_mix) :> _;
""",
    ]
)


class _Engine:
    """DawDreamer's engine with the compiled DSP, one per process (its processor is not thread-safe)."""

    def __init__(self):
        import dawdreamer

        self.engine = dawdreamer.RenderEngine(SAMPLE_RATE, BLOCK)
        self.faust = self.engine.make_faust_processor("faust")
        if not self.faust.set_dsp_string(DSP):  # pragma: no cover - a DawDreamer whose Faust rejects the program
            raise RuntimeError("DawDreamer could not compile the Faust program")
        self.faust.compile()
        self.engine.load_graph([(self.faust, [])])
        self.lock = threading.Lock()

    def render(self, params: np.ndarray, seed: int) -> np.ndarray:
        out = np.empty((len(params), N_SAMPLES), dtype=np.float32)
        with self.lock:
            for i, row in enumerate(params):
                for p, value in zip(SPACE.params, row):
                    self.faust.set_parameter(f"/dawdreamer/{p.name}", float(value))
                self.faust.set_parameter("/dawdreamer/noise_seed", float(seed))
                self.engine.render(N_SAMPLES / SAMPLE_RATE + BLOCK / SAMPLE_RATE)
                out[i] = self.engine.get_audio()[0, :N_SAMPLES]
        return out


@functools.lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


# DawDreamer's bindings report the engine as leaked when it outlives the interpreter's teardown
atexit.register(_engine.cache_clear)


def render(params: np.ndarray, seed: int | None = None) -> np.ndarray:
    """float64 (B, 37) natural units -> float32 (B, 16352); ``seed`` picks the noise realisation."""
    params = np.asarray(params, dtype=np.float64)
    if params.ndim != 2 or params.shape[1] != len(SPACE):
        raise ValueError(f"params must be (B, {len(SPACE)}), got {params.shape}")
    params = np.clip(params, [p.low for p in SPACE.params], [p.high for p in SPACE.params])
    if seed is not None and not 0 <= int(seed) < 2**31:
        raise ValueError(f"seed must be in [0, 2**31), got {seed}")
    return _engine().render(params, 0 if seed is None else int(seed))


@functools.lru_cache(maxsize=1)
def synth() -> FunctionGenerator:
    """The generator (a zero-argument factory, so ``file.py:synth`` builds it on first use)."""
    return FunctionGenerator(SPACE, render, sample_rate=SAMPLE_RATE, n_samples=N_SAMPLES, name="faust-subtractive", version="1")
