"""``synth100``: the built-in reference synthesizer, 100 parameters, 16 kHz, 16,352 samples.

It stands in for the user's algorithm: a subtractive/FM voice that behaves like a
real synth, so wavinv can be developed and benchmarked on a realistic inverse
problem (parameters that interact, parameters that matter only when another is
non-zero, discrete modes, log-scaled times and frequencies).

Signal chain (one note per clip, note-on at 0 s, note-off at ``gate``)::

    osc1 (+ sub one octave down, + detuned unison copy) ─┐
    osc2 ─────────────────────────────────────────────────┼─ mixer (+ ring osc1*osc2)
    osc3 (also phase-modulates osc1: xmod) ───────────────┘     + coloured noise
    FM operator (sine) phase-modulates osc1 (and osc2)            │
                                                       filter drive (soft clip)
                                       resonant filter LP12/LP24/BP/HP (+ noise_post)
                                                  static high-pass (one pole)
                                                  amp envelope (VCA) x tremolo
                                                       drive (soft clip)
                                           chorus (one modulated delay tap)
                                               feedback delay (echoes) -> volume
                                                 peak limiter (|y| <= 0.99)

Parameter groups (100 in all; see ``PARAMS`` for ranges and units)::

    note (3)        note, velocity, gate
    pitch (9)       tune, pitch envelope (amount, decay, target), glide (semitones, time),
                    vibrato (rate, depth, delay)
    osc1 (6)        wave, pw, octave, detune, phase, level
    osc2, osc3 (8+8)  wave, pw, octave, semi, detune, phase, keytrack, level
    mixer (7)       sub_level, sub_wave, unison_detune, unison_mix, ring_level, xmod, drift
    fm (8)          fm_depth, fm_ratio, fm_fine, fm_env_amount, fm_env_decay, fm_to_osc2,
                    fm_velocity, fm_keyscale
    noise (4)       noise_level, noise_color, noise_decay, noise_post
    filter (8)      filter_type, filter_cutoff, filter_resonance, filter_env_amount,
                    filter_keytrack, filter_velocity, filter_drive, hpf_cutoff
    filter env (4)  fenv_attack, fenv_decay, fenv_sustain, fenv_release
    amp env (6)     amp_attack, amp_hold, amp_decay, amp_sustain, amp_release, amp_velocity
    mod env (3)     modenv_attack, modenv_decay, modenv_to_osc2_pitch
    env_keyscale (1)
    lfo1 (8)        rate, shape, fade, phase, to_pitch, to_filter, to_amp, to_fm
    lfo2 (8)        rate, shape, fade, phase, to_osc2_pitch, to_filter, to_resonance, to_noise
    effects (9)     drive, chorus (mix, rate, depth, delay), delay (mix, time, feedback), volume

Design, DDSP style: ``compute_controls`` maps parameters to control signals at a
control rate of one value per 32 samples (512 points: envelopes, LFOs, pitch,
filter coefficients, gains); ``synthesize`` turns controls into audio with
vectorised numpy code only:

* oscillators are band-limited wavetables built per clip from the analytic
  harmonic series of a sine/triangle/saw/pulse morph, truncated below Nyquist at
  the highest pitch the clip reaches (FM bandwidth included, by Carson's rule);
  the FM index is limited so sidebands stay below Nyquist;
* the time-varying resonant filter is an exact biquad per 32-sample block, run
  as a complex one-pole (parallel form) whose recursion is vectorised across
  blocks: a 32-step loop inside the blocks and a log-depth scan across them;
* noise is read from fixed coloured noise tables at an offset hashed from the
  performance (note, velocity, gate): no random generator, so a clip depends
  only on its own row, and sound-design parameters never reseed the noise;
* delay feedback is computed exactly by repeated doubling of the echo train.

A known simplification: an oscillator's band limit is set once per clip by its
highest pitch, so a clip with a large upward pitch sweep (pitch envelope, glide,
FM) has correspondingly fewer harmonics at its lower pitches.

Every clip depends on its own row only, through elementwise or per-row
operations, so the bytes of a clip do not depend on the batch it is rendered in,
on the chunking or on the number of threads.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from ..errors import ParamSpaceError
from ..limits import cpu_count
from ..params import Param, ParamSpace

__all__ = ["Synth100", "PARAMS"]

SR = 16000
HOP = 32  # control period in samples
N_FRAMES = 511
N_SAMPLES = N_FRAMES * HOP  # 16352: a 512 x 512 spectrogram with n_fft=1024, hop=32, centred
NYQ = SR / 2
F_LIMIT = 0.95 * NYQ  # highest partial an oscillator may put out
F_MAX_PITCH = 0.45 * SR  # an oscillator's fundamental never goes above this
N_TAB1 = 2048  # osc1 table: one cycle of the sub octave (osc1 = even harmonics)
N_TAB = 1024  # osc2, osc3 and the FM operator tables
NOISE_LEN = 1 << 17
CHORUS_PAD = 512  # > longest chorus delay in samples (25 ms + 4 ms)

_P = Param
# fmt: off
PARAMS: tuple[Param, ...] = (
    # note
    _P("note", 36, 84, "int", unit="MIDI"),
    _P("velocity", 0.05, 1.0),
    _P("gate", 0.05, 0.9, "log", unit="s"),
    # pitch
    _P("tune", -50.0, 50.0, unit="cents"),
    _P("pitch_env_amount", -24.0, 24.0, unit="semitones"),
    _P("pitch_env_decay", 0.005, 1.0, "log", unit="s"),
    _P("pitch_env_target", choices=(0, 1)),  # 0: all oscillators and FM, 1: osc2 only
    _P("glide_semitones", -12, 12, "int", unit="semitones"),
    _P("glide_time", 0.01, 0.5, "log", unit="s"),
    _P("vibrato_rate", 3.0, 8.0, "log", unit="Hz"),
    _P("vibrato_depth", 0.0, 1.0, unit="semitones"),
    _P("vibrato_delay", 0.01, 0.8, "log", unit="s"),
    # oscillators; wave morphs 0 sine, 1 triangle, 2 saw, 3 pulse
    _P("osc1_wave", 0.0, 3.0),
    _P("osc1_pw", 0.05, 0.5),
    _P("osc1_octave", -1, 1, "int", unit="octaves"),
    _P("osc1_detune", -50.0, 50.0, unit="cents"),
    _P("osc1_phase", 0.0, 1.0, unit="cycles"),
    _P("osc1_level", 0.0, 1.0),
    _P("osc2_wave", 0.0, 3.0),
    _P("osc2_pw", 0.05, 0.5),
    _P("osc2_octave", -2, 1, "int", unit="octaves"),
    _P("osc2_semi", -12, 12, "int", unit="semitones"),
    _P("osc2_detune", -50.0, 50.0, unit="cents"),
    _P("osc2_phase", 0.0, 1.0, unit="cycles"),
    _P("osc2_keytrack", choices=(0, 1)),  # 0: fixed pitch around C4, 1: follows the note
    _P("osc2_level", 0.0, 1.0),
    _P("osc3_wave", 0.0, 3.0),
    _P("osc3_pw", 0.05, 0.5),
    _P("osc3_octave", -2, 1, "int", unit="octaves"),
    _P("osc3_semi", -12, 12, "int", unit="semitones"),
    _P("osc3_detune", -50.0, 50.0, unit="cents"),
    _P("osc3_phase", 0.0, 1.0, unit="cycles"),
    _P("osc3_keytrack", choices=(0, 1)),
    _P("osc3_level", 0.0, 1.0),
    # mixer
    _P("sub_level", 0.0, 1.0),
    _P("sub_wave", choices=(0, 1)),  # 0 square, 1 sine
    _P("unison_detune", 1.0, 50.0, "log", unit="cents"),
    _P("unison_mix", 0.0, 1.0),
    _P("ring_level", 0.0, 1.0),
    _P("xmod", 0.0, 3.0, unit="rad"),  # osc3 -> osc1 phase modulation index
    _P("drift", 0.0, 1.0),  # slow random pitch wander, up to 15 cents
    # FM operator (sine) -> osc1 phase (and osc2)
    _P("fm_depth", 0.0, 6.0, unit="rad"),
    _P("fm_ratio", choices=(0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)),
    _P("fm_fine", -0.25, 0.25),
    _P("fm_env_amount", 0.0, 1.0),
    _P("fm_env_decay", 0.01, 2.0, "log", unit="s"),
    _P("fm_to_osc2", 0.0, 1.0),
    _P("fm_velocity", 0.0, 1.0),
    _P("fm_keyscale", 0.0, 1.0),
    # noise
    _P("noise_level", 0.0, 1.0),
    _P("noise_color", -1.0, 1.0),  # -1 brown, 0 white, 1 blue
    _P("noise_decay", 0.01, 10.0, "log", unit="s"),
    _P("noise_post", 0.0, 1.0),  # share of the noise that bypasses the filter
    # filter
    _P("filter_type", choices=(0, 1, 2, 3)),  # LP12, LP24, BP, HP
    _P("filter_cutoff", 40.0, 7000.0, "log", unit="Hz"),
    _P("filter_resonance", 0.0, 1.0),
    _P("filter_env_amount", -4.0, 6.0, unit="octaves"),
    _P("filter_keytrack", 0.0, 1.0),
    _P("filter_velocity", 0.0, 1.0),
    _P("filter_drive", 0.0, 1.0),
    _P("hpf_cutoff", 10.0, 1000.0, "log", unit="Hz"),
    # filter envelope
    _P("fenv_attack", 0.001, 1.0, "log", unit="s"),
    _P("fenv_decay", 0.01, 2.0, "log", unit="s"),
    _P("fenv_sustain", 0.0, 1.0),
    _P("fenv_release", 0.01, 2.0, "log", unit="s"),
    # amp envelope
    _P("amp_attack", 0.001, 1.0, "log", unit="s"),
    _P("amp_hold", 0.0, 0.5, unit="s"),
    _P("amp_decay", 0.01, 2.0, "log", unit="s"),
    _P("amp_sustain", 0.0, 1.0),
    _P("amp_release", 0.01, 2.0, "log", unit="s"),
    _P("amp_velocity", 0.0, 1.0),
    # modulation envelope (attack-decay) -> osc2 pitch
    _P("modenv_attack", 0.001, 1.0, "log", unit="s"),
    _P("modenv_decay", 0.01, 2.0, "log", unit="s"),
    _P("modenv_to_osc2_pitch", -24.0, 24.0, unit="semitones"),
    _P("env_keyscale", 0.0, 1.0),  # envelope times shorten for higher notes
    # LFO 1; shapes 0 sine, 1 triangle, 2 saw down, 3 square, 4 sample & hold
    _P("lfo1_rate", 0.1, 20.0, "log", unit="Hz"),
    _P("lfo1_shape", choices=(0, 1, 2, 3, 4)),
    _P("lfo1_fade", 0.001, 1.0, "log", unit="s"),
    _P("lfo1_phase", 0.0, 1.0, unit="cycles"),
    _P("lfo1_to_pitch", 0.0, 2.0, unit="semitones"),
    _P("lfo1_to_filter", 0.0, 3.0, unit="octaves"),
    _P("lfo1_to_amp", 0.0, 1.0),
    _P("lfo1_to_fm", 0.0, 1.0),
    # LFO 2
    _P("lfo2_rate", 0.1, 20.0, "log", unit="Hz"),
    _P("lfo2_shape", choices=(0, 1, 2, 3, 4)),
    _P("lfo2_fade", 0.001, 1.0, "log", unit="s"),
    _P("lfo2_phase", 0.0, 1.0, unit="cycles"),
    _P("lfo2_to_osc2_pitch", 0.0, 2.0, unit="semitones"),
    _P("lfo2_to_filter", 0.0, 3.0, unit="octaves"),
    _P("lfo2_to_resonance", 0.0, 1.0),
    _P("lfo2_to_noise", 0.0, 1.0),
    # effects
    _P("drive", 0.0, 1.0),
    _P("chorus_mix", 0.0, 1.0),
    _P("chorus_rate", 0.1, 5.0, "log", unit="Hz"),
    _P("chorus_depth", 0.0, 1.0),  # delay swing, up to +-4 ms
    _P("chorus_delay", 5.0, 25.0, "log", unit="ms"),
    _P("delay_mix", 0.0, 1.0),
    _P("delay_time", 0.06, 0.5, "log", unit="s"),
    _P("delay_feedback", 0.0, 0.8),
    _P("volume", -24.0, 0.0, unit="dB"),
)
# fmt: on

_INDEX = {p.name: i for i, p in enumerate(PARAMS)}

# control points: t_k = k * HOP / SR, k = 0..N_FRAMES (the last one closes the last frame)
_T = np.arange(N_FRAMES + 1) * (HOP / SR)


# ---------------------------------------------------------------------------------
# fixed tables (built once, deterministic, no random generator)
# ---------------------------------------------------------------------------------
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a fixed, portable integer hash (uint64 in, uint64 out)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@lru_cache(maxsize=1)
def _noise_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Circular noise tables (white, brown, blue; unit RMS; padded by one clip) and a
    uniform table in [-1, 1) for sample & hold and drift, all from a fixed integer hash."""
    bits = _splitmix64(np.arange(2 * NOISE_LEN, dtype=np.uint64)) >> np.uint64(11)
    uniform = bits.astype(np.float64) * (2.0 / 2**53) - 1.0
    spec = np.fft.rfft(uniform[:NOISE_LEN])
    f = np.maximum(np.fft.rfftfreq(NOISE_LEN, 1.0 / SR), 20.0)
    tables = []
    for tilt in (0.0, -1.0, 0.5):  # amplitude ~ f**tilt: white, brown (-6 dB/oct), blue (+3 dB/oct)
        x = np.fft.irfft(spec * (f / 1000.0) ** tilt, n=NOISE_LEN)
        x = (x - x.mean()) / x.std()
        tables.append(np.concatenate([x, x[: N_SAMPLES + HOP]]).astype(np.float32))
    return tables[0], tables[1], tables[2], uniform[NOISE_LEN:]


def _pairs(table: np.ndarray) -> np.ndarray:
    """(R, N) periodic tables -> flat float64 view of (value, next - value) float32 pairs, N+1 per row."""
    tab = np.asarray(table, dtype=np.float32)
    ext = np.concatenate([tab, tab[:, :2]], axis=1)
    pairs = np.empty((tab.shape[0], tab.shape[1] + 1, 2), dtype=np.float32)
    pairs[..., 0] = ext[:, :-1]
    pairs[..., 1] = ext[:, 1:] - ext[:, :-1]
    return pairs.view(np.float64).reshape(-1)


def _row_seeds(note: np.ndarray, velocity: np.ndarray, gate: np.ndarray, seed: int | None = None) -> np.ndarray:
    """A 64-bit seed per row from the performance (note, velocity, gate), stable across platforms.

    ``seed`` (an int >= 0) salts the hash: the same performance with another
    noise and LFO realisation. ``None`` is the default realisation of stores.
    """
    perf = np.stack([note, velocity, gate], axis=1).astype("<f8")
    salt = b"" if seed is None else b"seed" + int(seed).to_bytes(8, "little")
    return np.array(
        [int.from_bytes(hashlib.sha256(row.tobytes() + salt).digest()[:8], "little") for row in perf],
        dtype=np.uint64,
    )


# ---------------------------------------------------------------------------------
# parameters -> controls
# ---------------------------------------------------------------------------------
def _adsr(t, attack, hold, decay, sustain, release, gate):
    """Linear attack, hold, exponential decay/release; times reach ~2% of the way (tau = time / 4)."""

    def before_off(tt):
        att = np.minimum(tt / attack, 1.0)
        dec = sustain + (1.0 - sustain) * np.exp(-np.maximum(tt - attack - hold, 0.0) * (4.0 / decay))
        return np.where(tt < attack + hold, att, dec)

    off_level = before_off(gate)
    rel = off_level * np.exp(-np.maximum(t - gate, 0.0) * (4.0 / release))
    return np.where(t < gate, before_off(t), rel)


def _lfo(t, rate, shape, fade, phase, uniform, seeds, salt):
    """LFO in [-1, 1] at control points; fades in linearly over ``fade`` seconds."""
    ph = phase + rate * t
    frac = ph - np.floor(ph)
    sine = np.sin(2 * np.pi * ph)
    tri = 1.0 - 4.0 * np.abs(np.mod(ph + 0.25, 1.0) - 0.5)
    saw = 1.0 - 2.0 * frac
    square = np.where(frac < 0.5, 1.0, -1.0)
    cycle = np.floor(ph).astype(np.int64)
    held = uniform[(_seed_pos(seeds) + salt + 7919 * cycle) % NOISE_LEN]
    out = np.select([shape == 0, shape == 1, shape == 2, shape == 3], [sine, tri, saw, square], held)
    return out * np.minimum(t / fade, 1.0)


def _seed_pos(seeds: np.ndarray) -> np.ndarray:
    """Row seeds (B,) -> positions (B, 1) in the uniform table."""
    return (seeds % np.uint64(NOISE_LEN)).astype(np.int64)[:, None]


def _midi_hz(m):
    return 440.0 * np.exp2((m - 69.0) / 12.0)


def _harmonics(wave, pw, n_harm, n_max):
    """Sine-series coefficients (B, n_max + 1) complex, irfft convention X_h = a_h - i b_h,
    of the sine/triangle/saw/pulse morph, truncated to harmonics <= n_harm."""
    h = np.arange(n_max + 1, dtype=np.float64)[None, :]
    hs = np.maximum(h, 1.0)
    w = np.clip(1.0 - np.abs(wave - np.arange(4.0)[None, :]), 0.0, 1.0)  # (B, 4) morph weights
    odd = (h % 2 == 1)
    b = np.zeros((wave.shape[0], n_max + 1))
    b[:, 1] += w[:, 0]
    b += w[:, 1:2] * np.where(odd, 8 / np.pi**2 * np.where(h % 4 == 1, 1.0, -1.0) / hs**2, 0.0)
    b += w[:, 2:3] * (-2 / np.pi / hs)
    ang = 2 * np.pi * np.mod(h * pw, 1.0)
    a = w[:, 3:4] * 2 / (np.pi * hs) * np.sin(ang)
    b += w[:, 3:4] * 2 / (np.pi * hs) * (1.0 - np.cos(ang))
    keep = (h >= 1) & (h <= n_harm)
    return np.where(keep, a - 1j * b, 0.0)


def _table(coeffs: np.ndarray, n: int) -> np.ndarray:
    """Harmonic coefficients -> one period sampled at n points (B, n)."""
    return np.fft.irfft(coeffs * (n / 2), n=n, axis=-1)


def _biquad(kind, fc, q):
    """RBJ biquad (kind 0 LP, 2 BP, 3 HP; (B, 1)) in parallel form: y = d x + Re(amp s), s = p s' + x.

    Returns ``(p, p**HOP, amp, d)``. With poles r e^(+-i theta) and numerator b0 + b1 w + b2 w^2:
    d = b2 / r^2, amp = (b0 - d) - i ((b0 + d) cos(theta) + b1 / r) / sin(theta).
    """
    w0 = (2 * np.pi / SR) * fc
    cw, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    inv = 1.0 / (1.0 + alpha)
    lp, bp = kind == 0, kind == 2
    b0 = np.where(lp, 0.5 - 0.5 * cw, np.where(bp, alpha, 0.5 + 0.5 * cw)) * inv
    b1 = np.where(lp, 2.0, np.where(bp, 0.0, -2.0)) * b0  # LP (1, 2, 1), BP (1, 0, -1), HP (1, -2, 1)
    b2 = np.where(bp, -1.0, 1.0) * b0
    r2 = (1.0 - alpha) * inv
    r = np.sqrt(r2)
    c = cw * inv / r  # cos(theta) = -a1 / (2 r)
    sn = np.sqrt(np.maximum(1.0 - c * c, 1e-30))
    d = b2 / r2
    amp = (b0 - d) + 1j * (-((b0 + d) * c + b1 / r) / sn)
    p = r * c + 1j * (r * sn)
    p_hop = p
    for _ in range(int(math.log2(HOP))):
        p_hop = p_hop * p_hop
    return p, p_hop, amp, d


class _Patch:
    """A batch's parameters as ``(B, 1)`` columns by name, with the values every stage reads."""

    def __init__(self, params: np.ndarray, seed: int | None):
        self.rows = params.shape[0]
        self.columns = np.ascontiguousarray(params.T)  # contiguous columns: ufuncs take one code path
        self.note, self.vel, self.gate = self("note"), self("velocity"), self("gate")
        self.seeds = _row_seeds(self.note[:, 0], self.vel[:, 0], self.gate[:, 0], seed)
        self.keyscale = np.exp2(-self("env_keyscale") * (self.note - 60.0) / 24.0)  # times shorten for high notes

    def __call__(self, name: str) -> np.ndarray:
        return self.columns[_INDEX[name], :, None]

    def vsens(self, name: str) -> np.ndarray:
        """Velocity sensitivity ``name``'s factor: 1 at full velocity."""
        return 1.0 - self(name) * (1.0 - self.vel)


def _modulators(g: _Patch, t: np.ndarray) -> dict[str, np.ndarray]:
    """LFOs and envelopes at control points."""
    uniform = _noise_tables()[3]
    m_att = g("modenv_attack") * g.keyscale
    return {
        "lfo1": _lfo(t, g("lfo1_rate"), g("lfo1_shape"), g("lfo1_fade"), g("lfo1_phase"), uniform, g.seeds, 0),
        "lfo2": _lfo(t, g("lfo2_rate"), g("lfo2_shape"), g("lfo2_fade"), g("lfo2_phase"), uniform, g.seeds, 104729),
        "amp_env": _adsr(t, g("amp_attack") * g.keyscale, g("amp_hold"), g("amp_decay") * g.keyscale,
                         g("amp_sustain"), g("amp_release") * g.keyscale, g.gate),
        "f_env": _adsr(t, g("fenv_attack") * g.keyscale, 0.0, g("fenv_decay") * g.keyscale,
                       g("fenv_sustain"), g("fenv_release") * g.keyscale, g.gate),
        "mod_env": np.where(t < m_att, t / m_att,
                            np.exp(-np.maximum(t - m_att, 0.0) * 4.0 / (g("modenv_decay") * g.keyscale))),
    }  # fmt: skip


def _pitches(g: _Patch, t: np.ndarray, mod: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The oscillators' frequencies in Hz (``f1_pts`` at control points, ``f1``..``f3`` per frame) and the note's."""
    uniform = _noise_tables()[3]
    note = g.note
    pe = g("pitch_env_amount") * np.exp(-t * 4.0 / g("pitch_env_decay"))
    pe_all = np.where(g("pitch_env_target") == 0, pe, 0.0)
    glide = g("glide_semitones") * np.maximum(1.0 - t / g("glide_time"), 0.0)
    vib = g("vibrato_depth") * np.sin(2 * np.pi * g("vibrato_rate") * t) * np.clip(
        (t - g("vibrato_delay")) / 0.2, 0.0, 1.0)
    common = g("tune") / 100.0 + pe_all + glide + vib + g("lfo1_to_pitch") * mod["lfo1"]
    drift = []
    for o in range(3):  # a slow sine per oscillator, rate and phase from the row seed
        rate, start = (uniform[(_seed_pos(g.seeds) + 31 * (2 * o + k) + 17) % NOISE_LEN] for k in range(2))
        drift.append(g("drift") * 0.15 * np.sin(2 * np.pi * ((0.4 + 0.3 * rate) * t + start)))
    base2 = np.where(g("osc2_keytrack") == 1, note, 60.0)
    base3 = np.where(g("osc3_keytrack") == 1, note, 60.0)
    m1 = note + 12 * g("osc1_octave") + g("osc1_detune") / 100 + common + drift[0]
    m2 = (base2 + 12 * g("osc2_octave") + g("osc2_semi") + g("osc2_detune") / 100 + common + drift[1]
          + np.where(g("pitch_env_target") == 1, pe, 0.0) + g("lfo2_to_osc2_pitch") * mod["lfo2"]
          + g("modenv_to_osc2_pitch") * mod["mod_env"])
    m3 = base3 + 12 * g("osc3_octave") + g("osc3_semi") + g("osc3_detune") / 100 + common + drift[2]
    f1_pts = np.minimum(_midi_hz(m1), F_MAX_PITCH)
    return {
        "f1_pts": f1_pts,
        "f1": f1_pts[:, :N_FRAMES],
        "f2": np.minimum(_midi_hz(m2), F_MAX_PITCH)[:, :N_FRAMES],
        "f3": np.minimum(_midi_hz(m3), F_MAX_PITCH)[:, :N_FRAMES],
        "f_note": _midi_hz(note + common),
    }  # fmt: skip


def _fm(g: _Patch, t: np.ndarray, mod: dict[str, np.ndarray], f: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The FM operator: ``(index in radians at control points, its frequency in Hz)``, the index
    limited so the fundamental's sidebands up to order index + 2 (beyond Carson's index + 1) stay below the limit."""
    fm_shape = (1.0 - g("fm_env_amount")) + g("fm_env_amount") * np.exp(-t * 4.0 / g("fm_env_decay"))
    fm_index = (g("fm_depth") * g.vsens("fm_velocity") * np.exp2(-g("fm_keyscale") * (g.note - 60.0) / 24.0)
                * fm_shape * np.maximum(1.0 + g("lfo1_to_fm") * mod["lfo1"], 0.0))
    f_mod = np.minimum(f["f_note"] * (g("fm_ratio") + g("fm_fine")), F_MAX_PITCH)
    return np.minimum(fm_index, np.maximum((F_LIMIT - f["f1_pts"]) / f_mod - 2.0, 0.0)), f_mod


def _band_limit(f, deviation, margin, cap):
    """Harmonics of a table whose pitch peaks at ``f``'s maximum plus ``deviation`` (Hz) that stay below the limit."""
    top = f.max(axis=1, keepdims=True) + deviation
    return np.clip(np.floor((F_LIMIT - margin) / top), 1, cap)


def _wavetables(g: _Patch, f: dict[str, np.ndarray], fm_index: np.ndarray, f_mod: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row tables of osc1 (+ sub), osc2 and osc3, band-limited at the clip's highest pitch, and the xmod depth.

    Phase modulation by index I at rate f_m moves harmonic h by up to h * I * f_m, so
    harmonic h stays below the limit while h * (f + I * f_m) + 2 f_m <= F_LIMIT.
    """
    f1, f3, fm_to2 = f["f1"], f["f3"], g("fm_to_osc2")
    fm_max = fm_index.max(axis=1, keepdims=True)
    fm_dev = fm_max * f_mod.max(axis=1, keepdims=True)  # peak frequency deviation of the fundamental, Hz
    fm_margin = np.where(fm_max > 0, 2.0 * f_mod.max(axis=1, keepdims=True), 0.0)
    n3 = _band_limit(f3, 0.0, 0.0, N_TAB // 4)
    tab3 = _table(_harmonics(g("osc3_wave"), g("osc3_pw"), n3, N_TAB // 4), N_TAB) * g("osc3_level")
    n2 = _band_limit(f["f2"], fm_to2 * fm_dev, fm_to2 * fm_margin, N_TAB // 4)
    tab2 = _table(_harmonics(g("osc2_wave"), g("osc2_pw"), n2, N_TAB // 4), N_TAB) * g("osc2_level")
    # xmod: osc3 (level included) phase-modulates osc1 by xmod radians per unit; the peak
    # slope of osc3 sets the deviation, scaled down so osc1's fundamental stays below the limit
    slope3 = np.abs(np.diff(tab3, axis=1, append=tab3[:, :1])).max(axis=1, keepdims=True) * N_TAB
    xmod_dev = g("xmod") / (2 * np.pi) * slope3 * f3.max(axis=1, keepdims=True)
    room = F_LIMIT - fm_margin - f1.max(axis=1, keepdims=True) - fm_dev
    xmod = g("xmod") * np.where(xmod_dev > 0, np.clip(room / np.maximum(xmod_dev, 1e-300), 0.0, 1.0), 1.0)
    xmod_dev = xmod / (2 * np.pi) * slope3 * f3.max(axis=1, keepdims=True)
    # in sub-octave (psi) harmonics, where osc1's harmonic h is psi harmonic 2h
    n1 = np.maximum(_band_limit(f1 / 2, (fm_dev + xmod_dev) / 2, fm_margin, N_TAB1 // 4), 2)
    return {"tab1": _osc1_table(g, n1), "tab2": tab2, "tab3": tab3, "xmod": xmod}


def _osc1_table(g: _Patch, n1: np.ndarray) -> np.ndarray:
    """osc1's table spans one sub-octave cycle: osc1 on even harmonics, the sub on odd ones (``n1`` of them in all)."""
    c1 = _harmonics(g("osc1_wave"), g("osc1_pw"), np.floor(n1 / 2), N_TAB1 // 8) * g("osc1_level")
    k = np.arange(N_TAB1 // 4 + 1)[None, :]
    sub_sq = np.where((k % 2 == 1) & (k <= n1), -1j * 4 / (np.pi * np.maximum(k, 1)), 0.0)
    sub = np.where(g("sub_wave") == 0, sub_sq, np.where(k == 1, -1j, 0.0)) * g("sub_level")
    spec1 = sub.astype(np.complex128)
    spec1[:, 0::2] += c1
    return _table(spec1, N_TAB1)


def _filter(g: _Patch, mod: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The resonant filter's per-frame biquad sections (a second one for LP24 rows) and the high-pass pole."""
    ftype = g("filter_type")
    f_oct = (np.log2(g("filter_cutoff")) + g("filter_keytrack") * (g.note - 60.0) / 12.0
             + g("filter_env_amount") * g.vsens("filter_velocity") * mod["f_env"]
             + g("lfo1_to_filter") * mod["lfo1"] + g("lfo2_to_filter") * mod["lfo2"])
    fc = np.clip(np.exp2(f_oct), 20.0, F_MAX_PITCH)[:, :N_FRAMES]
    res = np.clip(g("filter_resonance") + 0.5 * g("lfo2_to_resonance") * mod["lfo2"], 0.0, 1.0)[:, :N_FRAMES]
    q = 0.6 * 30.0**res
    lp24 = ftype == 1
    q1 = np.where(lp24, 0.541, q)
    p1, p1_hop, amp1, d1 = _biquad(np.where(lp24, 0, ftype), fc, q1)
    comp = 1.0 / np.sqrt(np.maximum(q, 1.0))  # passband drops as resonance rises
    # the second LP24 section (Butterworth pair 0.541 / 1.307 at zero resonance), LP24 rows only
    p2, p2_hop, amp2 = (np.zeros((g.rows, N_FRAMES), np.complex128) for _ in range(3))
    d2 = np.zeros((g.rows, N_FRAMES))
    rows = np.flatnonzero(lp24[:, 0])
    if rows.size:
        p2[rows], p2_hop[rows], amp2[rows], d2[rows] = _biquad(
            np.zeros((rows.size, 1)), fc[rows], np.minimum(1.307 * q[rows] / 0.6, 25.0))
    return {
        "p1": p1, "p1_hop": p1_hop, "amp1": amp1 * comp, "d1": d1 * comp,
        "p2": p2, "p2_hop": p2_hop, "amp2": amp2, "d2": d2,
        "lp24": lp24,
        "hp_pole": np.exp(-2 * np.pi * g("hpf_cutoff") / SR),  # one-pole high-pass: x - lowpass(x)
    }  # fmt: skip


def _phase(f, start):
    """Oscillator phases at frame starts (cycles, float64, wrapped) and increments per sample."""
    inc = f / SR
    ph = np.empty_like(inc)
    ph[:, :1] = start
    np.cumsum(inc[:, :-1] * HOP, axis=1, out=ph[:, 1:])
    ph[:, 1:] += start
    return ph - np.floor(ph), inc


def _phases(g: _Patch, f: dict[str, np.ndarray], f_mod: np.ndarray) -> dict[str, np.ndarray]:
    f1 = f["f1"]
    ph1, inc1 = _phase(f1 / 2, g("osc1_phase") / 2)  # osc1 table runs at the sub-octave rate
    phu, incu = _phase(f1 * np.exp2(g("unison_detune") / 1200.0) / 2, g("osc1_phase") / 2 + 0.3)
    ph2, inc2 = _phase(f["f2"], g("osc2_phase"))
    ph3, inc3 = _phase(f["f3"], g("osc3_phase"))
    phm, incm = _phase(f_mod[:, :N_FRAMES], np.zeros((g.rows, 1)))
    return {"ph1": ph1, "inc1": inc1, "phu": phu, "incu": incu, "ph2": ph2, "inc2": inc2, "ph3": ph3, "inc3": inc3, "phm": phm, "incm": incm}


def compute_controls(params: np.ndarray, seed: int | None = None) -> dict[str, np.ndarray]:
    """Parameters (B, 100) natural units -> static and control-rate signals (float64 mostly).

    ``seed`` picks another noise/LFO realisation (see ``_row_seeds``). A
    composition of named stages: modulators, pitches, FM, wavetables, filter,
    gains and phases.
    """
    t = _T[None, :]  # (1, K+1)
    g = _Patch(params, seed)
    mod = _modulators(g, t)
    f = _pitches(g, t, mod)
    fm_index, f_mod = _fm(g, t, mod, f)
    tables = _wavetables(g, f, fm_index, f_mod)
    lfo1, lfo2 = mod["lfo1"], mod["lfo2"]
    amp = (mod["amp_env"] * g.vsens("amp_velocity") * (1.0 - g("lfo1_to_amp") * (0.5 - 0.5 * lfo1)))
    # unit-RMS noise at level 1 mixes in at RMS 0.5, like a saw at level 1 (RMS 0.58)
    noise_gain = (g("noise_level") * (0.5 / 3.0) * np.exp(-t * 4.0 / g("noise_decay"))
                  * (1.0 - g("lfo2_to_noise") * (0.5 - 0.5 * lfo2)))
    chorus_ms = g("chorus_delay") + 4.0 * g("chorus_depth") * np.sin(2 * np.pi * g("chorus_rate") * t)
    # every value has the rows on its first axis (``_rows`` slices them)
    return {
        "tab1": tables["tab1"], "tab2": tables["tab2"], "tab3": tables["tab3"],
        **_phases(g, f, f_mod),
        "unison_mix": g("unison_mix"),
        "pm1": fm_index / (2 * np.pi) / 2,  # FM in sub-octave cycles for osc1
        "fm_to_osc2": g("fm_to_osc2") * 2.0,
        "xmod": tables["xmod"] / (2 * np.pi) / 2,  # in sub-octave cycles per unit of osc3
        "ring": g("ring_level"),
        "noise_offset": _seed_pos(g.seeds),
        "noise_color": g("noise_color"),
        "noise_gain": noise_gain,
        "noise_post": g("noise_post"),
        "filter_drive": g("filter_drive"),
        **_filter(g, mod),
        "amp": amp,
        "drive": g("drive"),
        "chorus_mix": g("chorus_mix"),
        "chorus_samples": chorus_ms * (SR / 1000.0),
        "delay_mix": g("delay_mix"),
        "delay_samples": np.rint(g("delay_time") * SR).astype(np.int64),
        "delay_feedback": g("delay_feedback"),
        "volume": 2.0 * 10.0 ** (g("volume") / 20.0),  # +6 dB makeup: the limiter catches the loudest
    }  # fmt: skip


# ---------------------------------------------------------------------------------
# controls -> signal (float32). Until the filter the layout is frame-major,
# (HOP, rows, frames): sample j of every control frame is one contiguous slab, which
# suits the block filter and broadcasting of control values; after it, (rows, time).
# Hot loops write into reused buffers: fresh large arrays cost page faults.
# ---------------------------------------------------------------------------------
SUB = 8  # rows rendered together at audio rate (arrays stay cache-sized)
# Fewer rows than this per thread and threads cost more than they give (the GIL is held between numpy
# calls): on 2 cores, 17 rows took 2.1 ms a row on 2 threads and 1.35 ms on one; 83 rows 0.97 vs 1.22 ms.
THREAD_ROWS = 32
_JF = (np.arange(HOP, dtype=np.float32) / HOP)[:, None, None]  # position inside a frame
_JT = np.arange(HOP, dtype=np.float32) / HOP
# sin(2 pi v) ~ v * P(v^2) on [-1/2, 1/2], max error 5e-7 in float32
_SIN = tuple(np.float32(c) for c in (6.28318279, -41.34141939, 81.59613876, -76.57968785, 41.20374363,
                                        -12.26885994))


class _Work:
    """Named scratch arrays, reallocated only when a shape changes."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def __call__(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        buf = self._bufs.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._bufs[name] = np.empty(shape, dtype)
        return buf


def _rows(ctrl: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {k: v[start:stop] for k, v in ctrl.items()}


def _ramp(points: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Control points (b, K+1) -> per-sample linear interpolation, frame-major (HOP, b, K)."""
    p = points.astype(np.float32)
    np.multiply((p[:, 1:] - p[:, :-1])[None], _JF, out=out)
    out += p[None, :, :-1]
    return out


def _gather(w: _Work, pairs: np.ndarray, pos: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """Linear interpolation in (value, slope) pairs at positions ``pos`` >= 0; returns ``pos``.

    ``offsets`` (int32, broadcastable to ``pos``) select each row's table; they are added
    as integers so a row's result never depends on where it sits in the batch.
    """
    whole = np.floor(pos, out=w("whole", pos.shape))
    pos -= whole
    idx = w("idx", pos.shape, np.int32)
    np.copyto(idx, whole, casting="unsafe")
    if offsets is not None:
        idx += offsets
    # (indices are in range; mode="clip" also takes the fast path for int32 indices)
    g = pairs.take(idx, out=w("pairs", pos.shape, np.float64), mode="clip").view(np.float32)
    part = w("part", pos.shape)
    # ufuncs on strided views are slow; copying them out is fast
    np.copyto(part, g[..., 1::2])
    pos *= part
    np.copyto(part, g[..., 0::2])
    pos += part
    return pos


def _osc(w: _Work, out: np.ndarray, pairs: np.ndarray, n: int, phase0: np.ndarray, inc: np.ndarray,
         pm: np.ndarray | None = None) -> np.ndarray:
    """Read per-row periodic tables of n points (``_pairs``) at phase0 + inc * j (+ pm) cycles
    into out (HOP, b, K)."""
    b = phase0.shape[0]
    np.multiply((inc * HOP).astype(np.float32)[None], _JF, out=out)
    # +8 cycles keeps the phase positive under phase modulation, so the wrap is a plain frac
    out += (phase0 + 8.0).astype(np.float32)[None]
    if pm is not None:
        out += pm
    out -= np.floor(out, out=w("whole", out.shape))
    out *= np.float32(n)
    return _gather(w, pairs, out, (np.arange(b, dtype=np.int32) * (n + 1))[None, :, None])


def _sine(out: np.ndarray, phase0: np.ndarray, inc: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """sin(2 pi phase) at phase0 + inc * j cycles, by polynomial, into out (HOP, b, K)."""
    v = np.multiply((inc * HOP).astype(np.float32)[None], _JF, out=tmp)
    v += (phase0 + 0.5).astype(np.float32)[None]
    v -= np.floor(v, out=out)
    v -= np.float32(0.5)
    v2 = np.multiply(v, v, out=out)
    acc = v2 * _SIN[5]
    for c in _SIN[4:0:-1]:
        acc += c
        acc *= v2
    acc += _SIN[0]
    np.multiply(acc, v, out=out)
    return out


def _soft(x: np.ndarray, amount: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """In place: soft clipper x/(1+|x|) with input gain 1+9a, unity at 1, blended in by ``amount``."""
    gain = (1.0 + 9.0 * amount).astype(np.float32)
    z = np.multiply(x, gain, out=tmp)
    sat = np.abs(z)
    sat += np.float32(1.0)
    np.divide(z, sat, out=sat)
    sat *= ((1.0 + gain) / gain).astype(np.float32)
    sat -= x
    sat *= amount.astype(np.float32)
    x += sat  # amount 0 adds exact zeros: a bypass
    return x


def _scan(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inclusive linear recurrence S_k = q_k S_(k-1) + u_k along the last axis (log-depth)."""
    q, u = q.copy(), u.copy()
    s = 1
    while s < q.shape[-1]:
        u[..., s:] += q[..., s:] * u[..., :-s]
        q[..., s:] *= q[..., :-s].copy()
        s *= 2
    return u


def _block_filter(x: np.ndarray, p: np.ndarray, p_hop: np.ndarray, amp: np.ndarray, d: np.ndarray,
                  out: np.ndarray) -> np.ndarray:
    """Time-varying filter y = d x + Re(amp s), s[n] = p s[n-1] + x[n], coefficients per frame.

    x frame-major (HOP, b, K) float32; p, p_hop = p**HOP, amp (complex, or real for a one-pole)
    and d are (b, K). Inside the frames the recursion steps over the HOP positions for all
    frames at once; the state carried from frame to frame is a linear recurrence in
    the frames, solved by a log-depth scan. ``out`` may be ``x``.

    When the coefficients change, the normalised state (1 - p) s is what carries over
    (it stays near the signal's own size whatever the cutoff), so fast sweeps do not click.
    """
    dtype = np.complex64 if np.iscomplexobj(p) else np.float32
    gain = 1.0 - p
    carry = np.ones_like(gain)
    carry[:, 1:] = gain[:, :-1] / gain[:, 1:]  # s at a frame start = carry * s at the last frame's end
    p = p.astype(dtype)
    z = x[0].astype(dtype)
    for j in range(1, HOP):
        z *= p
        z += x[j]
    end = _scan((p_hop * carry).astype(dtype), z)  # state at the end of each frame
    s = np.zeros_like(z)
    s[:, 1:] = end[:, :-1] * carry[:, 1:]
    amp = amp.astype(dtype)
    d = d.astype(np.float32)
    tmp = np.empty_like(s)
    for j in range(HOP):
        s *= p
        s += x[j]
        np.multiply(amp, s, out=tmp)
        np.multiply(d, x[j], out=out[j])
        out[j] += tmp.real
    return out


def _sources(w: _Work, c: dict[str, np.ndarray], x: np.ndarray, post: np.ndarray) -> None:
    """Oscillators and noise -> x (into the filter) and post (noise bypassing it), (HOP, b, K)."""
    b = c["tab1"].shape[0]
    shape = (HOP, b, N_FRAMES)

    def col(name: str) -> np.ndarray:  # (b, 1) -> (1, b, 1) float32
        return c[name].astype(np.float32)[None]

    o3 = _osc(w, w("o3", shape), _pairs(c["tab3"]), N_TAB, c["ph3"], c["inc3"])
    mod = _sine(w("mod", shape), c["phm"], c["incm"], w("tmp", shape))
    mod *= _ramp(c["pm1"], w("tmp", shape))
    pm1 = np.multiply(o3, col("xmod"), out=w("pm1", shape))
    pm1 += mod
    pairs1 = _pairs(c["tab1"])
    o1 = _osc(w, w("o1", shape), pairs1, N_TAB1, c["ph1"], c["inc1"], pm1)
    uni = _osc(w, w("uni", shape), pairs1, N_TAB1, c["phu"], c["incu"], pm1)
    uni *= col("unison_mix")
    o1 += uni
    mod *= col("fm_to_osc2")
    o2 = _osc(w, w("o2", shape), _pairs(c["tab2"]), N_TAB, c["ph2"], c["inc2"], mod)
    np.multiply(o1, o2, out=x)
    x *= col("ring")
    x += o1
    x += o2
    x += o3
    x *= np.float32(1 / 3)

    # noise: coloured tables read at an offset hashed from the performance
    white, brown, blue, _ = _noise_tables()
    noise = w("noise", (b, N_SAMPLES))
    for r in range(b):
        o, colour = int(c["noise_offset"][r, 0]), float(c["noise_color"][r, 0])
        other = brown if colour < 0 else blue
        np.multiply(white[o : o + N_SAMPLES], np.float32(1 - abs(colour)), out=noise[r])
        noise[r] += other[o : o + N_SAMPLES] * np.float32(abs(colour))
    gain = _ramp(c["noise_gain"], w("tmp", shape))
    gain *= noise.reshape(b, N_FRAMES, HOP).transpose(2, 0, 1)
    np.multiply(gain, col("noise_post"), out=post)
    gain -= post
    x += gain
    _soft(x, col("filter_drive"), w("tmp", shape))


def _filter_section(x: np.ndarray, post: np.ndarray, c: dict[str, np.ndarray]) -> np.ndarray:
    """In place on x: resonant filter (LP24 rows: a second section), post-filter noise, high-pass."""
    y = _block_filter(x, c["p1"], c["p1_hop"], c["amp1"], c["d1"], out=x)
    rows = np.flatnonzero(c["lp24"][:, 0])
    if rows.size:
        sub = y[:, rows]
        y[:, rows] = _block_filter(sub, c["p2"][rows], c["p2_hop"][rows], c["amp2"][rows], c["d2"][rows], sub)
    y += post
    _highpass(y, c["hp_pole"])
    return y


def _highpass(x: np.ndarray, pole: np.ndarray) -> None:
    """In place on x (HOP, b, K): x - lowpass(x), a static one-pole lowpass s = pole s' + (1 - pole) x.

    The same block recursion as ``_block_filter``, specialised to a real, constant pole.
    """
    p = pole.astype(np.float32)  # (b, 1)
    z = x[0].copy()
    for j in range(1, HOP):
        z *= p
        z += x[j]
    end = _scan(np.broadcast_to(p**HOP, z.shape), z)
    s = np.zeros_like(z)
    s[:, 1:] = end[:, :-1]
    gain = 1.0 - p
    tmp = np.empty_like(s)
    for j in range(HOP):
        s *= p
        s += x[j]
        np.multiply(s, gain, out=tmp)
        x[j] -= tmp


def _effects(w: _Work, y: np.ndarray, c: dict[str, np.ndarray], out: np.ndarray) -> None:
    """Filtered signal (HOP, b, K) -> amp envelope, drive, chorus, delay, volume, limiter -> out (b, T)."""
    b = y.shape[1]
    sig = out.reshape(b, N_FRAMES, HOP)
    p = c["amp"].astype(np.float32)
    np.multiply((p[:, 1:] - p[:, :-1])[..., None], _JT, out=sig)  # the envelope, in time order
    sig += p[:, :-1, None]
    sig *= y.transpose(1, 2, 0)
    _soft(out, c["drive"], w("tmp2", out.shape))
    _chorus(w, out, c["chorus_samples"], c["chorus_mix"])
    _delay(out, c["delay_samples"][:, 0], c["delay_feedback"][:, 0], c["delay_mix"][:, 0])
    out *= c["volume"].astype(np.float32)
    peak = np.abs(out, out=w("tmp2", out.shape)).max(axis=1, keepdims=True)
    out *= np.minimum(np.float32(1.0), np.float32(0.99) / np.maximum(peak, np.float32(1e-30)))


def _chorus(w: _Work, x: np.ndarray, delay_samples: np.ndarray, mix: np.ndarray) -> None:
    """In place: one tap at a modulated fractional delay (linear interpolation) added to x (b, T)."""
    b = x.shape[0]
    width = CHORUS_PAD + N_SAMPLES
    pairs = w("chorus_pairs", (b, width, 2))
    pairs[:, :CHORUS_PAD] = 0.0
    pairs[:, CHORUS_PAD:, 0] = x
    np.subtract(x[:, 1:], x[:, :-1], out=pairs[:, CHORUS_PAD:-1, 1])
    pairs[:, CHORUS_PAD - 1, 1] = x[:, 0]
    pairs[:, -1, 1] = -x[:, -1]
    pos = w("chorus_pos", (b, N_FRAMES, HOP))
    p = delay_samples.astype(np.float32)
    np.multiply(-(p[:, 1:] - p[:, :-1])[..., None], _JT, out=pos)  # minus the delay, per sample
    pos -= p[:, :-1, None]
    pos += (np.arange(N_SAMPLES, dtype=np.float32) + CHORUS_PAD).reshape(N_FRAMES, HOP)
    wet = _gather(w, pairs.view(np.float64).reshape(-1), pos, (np.arange(b, dtype=np.int32) * width)[:, None, None])
    wet *= mix.astype(np.float32)[..., None]
    x += wet.reshape(b, N_SAMPLES)


def _delay(x: np.ndarray, delay: np.ndarray, feedback: np.ndarray, mix: np.ndarray) -> None:
    """In place: echoes at k * delay with gains feedback**(k-1), computed exactly by doubling."""
    for r in np.flatnonzero(mix > 0):
        d = int(delay[r])
        train = x[r].copy()  # sum_k fb^k x[t - k d], built by doubling the shift
        shift, gain = d, float(feedback[r])
        while shift < N_SAMPLES and gain > 0:
            train[shift:] += np.float32(gain) * train[:-shift]
            shift, gain = 2 * shift, gain * gain
        x[r, d:] += np.float32(mix[r]) * train[:-d]


def synthesize(ctrl: dict[str, np.ndarray]) -> np.ndarray:
    """Control signals (from ``compute_controls``) -> audio (B, N_SAMPLES) float32.

    Sources and effects run ``SUB`` rows at a time; the filter runs on all rows at once.
    """
    B = ctrl["tab1"].shape[0]
    x = np.empty((HOP, B, N_FRAMES), np.float32)
    post = np.empty_like(x)
    w = _Work()
    for s in range(0, B, SUB):
        e = min(s + SUB, B)
        xs, ps = w("x", (HOP, e - s, N_FRAMES)), w("post", (HOP, e - s, N_FRAMES))
        _sources(w, _rows(ctrl, s, e), xs, ps)
        x[:, s:e], post[:, s:e] = xs, ps
    y = _filter_section(x, post, ctrl)
    out = np.empty((B, N_SAMPLES), np.float32)
    for s in range(0, B, SUB):
        e = min(s + SUB, B)
        _effects(w, y[:, s:e], _rows(ctrl, s, e), out[s:e])
    return out


# ---------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------
class Synth100:
    """The built-in 100-parameter synthesizer (see the module docstring).

    Rows are rendered in blocks of at most ``block`` rows, spread over ``threads``
    threads (numpy releases the GIL; default: the cores this process may use),
    each given at least ``THREAD_ROWS`` rows.
    Neither setting changes a single byte of the output.
    """

    sample_rate: int = SR
    n_samples: int = N_SAMPLES
    name: str = "synth100"
    version: str = "1"

    def __init__(self, threads: int | None = None, block: int = 64):
        self.space = ParamSpace(PARAMS)
        self.threads = cpu_count() if threads is None else max(1, int(threads))
        self.block = max(1, int(block))

    def __repr__(self) -> str:
        return f"Synth100(v{self.version}, {len(self.space)} params, {self.n_samples} samples @ {self.sample_rate} Hz)"

    def prepare(self, params: np.ndarray) -> np.ndarray:
        """Check shape and finiteness, clip to the space, snap ints and choices."""
        x = np.asarray(params, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.space):
            raise ParamSpaceError(f"synth100 expects params of shape (B, {len(self.space)}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ParamSpaceError("synth100: parameters must be finite")
        out = np.empty_like(x)
        for j, p in enumerate(self.space):
            if p.scale == "choice":
                choices = np.asarray(p.choices)
                out[:, j] = choices[np.abs(x[:, j, None] - choices).argmin(axis=1)]
            else:
                out[:, j] = np.clip(x[:, j], p.low, p.high)
                if p.scale == "int":
                    out[:, j] = np.rint(out[:, j])
        return out

    def controls(self, params: np.ndarray) -> dict[str, np.ndarray]:
        """Parameters -> control signals (see ``compute_controls``)."""
        return compute_controls(self.prepare(params))

    def render(self, params: np.ndarray, seed: int | None = None) -> np.ndarray:
        """float64 (B, 100) natural units -> float32 (B, 16352) in [-0.99, 0.99].

        Values outside the space are clipped to it (ints rounded, choices snapped to the
        nearest); a wrong shape or a non-finite value raises ``ParamSpaceError``.
        ``seed`` (int >= 0) renders the same patch with another realisation of its
        noise, sample-and-hold LFO and drift; ``None`` (the default) is the one
        stores hold.
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ParamSpaceError(f"synth100: seed must be None or an integer >= 0, got {seed!r}")
        x = self.prepare(params)
        out = np.empty((x.shape[0], N_SAMPLES), np.float32)
        threads = max(1, min(self.threads, x.shape[0] // THREAD_ROWS))
        size = max(1, min(self.block, -(-x.shape[0] // threads)))
        starts = range(0, x.shape[0], size)

        def work(s: int) -> None:
            out[s : s + size] = synthesize(compute_controls(x[s : s + size], seed))

        if threads == 1 or len(starts) <= 1:
            for s in starts:
                work(s)
        else:
            with ThreadPoolExecutor(min(threads, len(starts))) as pool:
                list(pool.map(work, starts))
        return out
