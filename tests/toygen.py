"""Tiny generators for the store tests, importable by spawned worker processes.

Load them by file spec, e.g. ``tests/toygen.py:toy``.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from wavinv import FunctionGenerator, Param, ParamSpace

N_SAMPLES = 1024
SPACE = ParamSpace([Param("freq", 50.0, 2000.0, scale="log"), Param("amp", 0.0, 1.0), Param("wave", choices=[0, 1, 2])])
OTHER_SPACE = ParamSpace([Param("freq", 50.0, 4000.0, scale="log"), Param("amp", 0.0, 1.0), Param("wave", choices=[0, 1, 2])])


def render_clips(params: np.ndarray) -> np.ndarray:
    t = np.arange(N_SAMPLES) / 8000.0
    phase = 2 * np.pi * params[:, 0:1] * t
    wave = np.where(params[:, 2:3] == 0, np.sin(phase), np.where(params[:, 2:3] == 1, np.sign(np.sin(phase)), (phase / np.pi) % 2 - 1))
    noise = np.sin(1e3 * params[:, 0:1] * t**2)  # a deterministic chirp, so clips are not trivially compressible
    return (params[:, 1:2] * (0.8 * wave + 0.2 * noise)).astype(np.float32)


def _slow(params: np.ndarray) -> np.ndarray:
    time.sleep(float(os.environ.get("TOYGEN_DELAY", "0.02")) * len(params))
    return render_clips(params)


def _nan(params: np.ndarray) -> np.ndarray:
    out = render_clips(params)
    out[:, 10] = np.nan
    return out


def _nan_late(params: np.ndarray) -> np.ndarray:
    """NaN only in loud clips (amp > 0.9): a generator that fails on some samples, not on the first."""
    out = render_clips(params)
    out[params[:, 1] > 0.9, 5] = np.nan
    return out


def _bad_shape(params: np.ndarray) -> np.ndarray:
    return render_clips(params)[:, :-1]


def _louder(params: np.ndarray) -> np.ndarray:
    return render_clips(params) * np.float32(1.5)


def _dies(params: np.ndarray) -> np.ndarray:
    """Kills its process on the row whose amp is ``TOYGEN_DIE_AMP`` (a crash in native code, as a test sees it)."""
    amp = os.environ.get("TOYGEN_DIE_AMP")
    if amp is not None and (params[:, 1] == float(amp)).any():
        os._exit(3)
    return render_clips(params)


def _make(render, space=SPACE, name="toy", version="1") -> FunctionGenerator:
    return FunctionGenerator(space, render, sample_rate=8000, n_samples=N_SAMPLES, name=name, version=version)


toy = _make(render_clips)
slow = _make(_slow)  # the same generator as toy, only slower
nan = _make(_nan)  # same identity as toy, broken output
nan_late = _make(_nan_late)
bad_shape = _make(_bad_shape)
other = _make(render_clips, name="other")
other_space = _make(render_clips, space=OTHER_SPACE)
newer = _make(render_clips, version="2")
# a fourth parameter the sound ignores: any value of it is as good an answer
IDLE_SPACE = ParamSpace([*SPACE.params, Param("idle", 0.0, 1.0)])
idle = _make(lambda params: render_clips(params[:, :3]), space=IDLE_SPACE, name="idle")
altered = _make(_louder)  # same identity as toy, other clips
dies = _make(_dies)  # toy, but its process dies on one row (TOYGEN_DIE_AMP)


# -- a generator with its own picture: 64 x 64, log-frequency, floored at -80 dB --------------
PICTURE_FLOOR = -80.0


def log_picture(waves: np.ndarray, floor: float = PICTURE_FLOOR) -> np.ndarray:
    """The user's own spectrogram: a 256-point STFT, hop 16, on 64 log-spaced bands from 60 Hz to 4 kHz."""
    n_fft, hop = 256, 16
    x = np.pad(np.asarray(waves, dtype=np.float64), ((0, 0), (n_fft // 2, n_fft // 2)))
    starts = np.arange(64) * hop
    frames = np.stack([x[:, s : s + n_fft] for s in starts], axis=1) * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=-1)) / (n_fft / 4)  # (B, 64 frames, 129 bins)
    bins = np.fft.rfftfreq(n_fft, 1 / 8000.0)
    bands = np.geomspace(60.0, 4000.0, 64)
    band_mag = np.stack([np.interp(bands, bins, m) for m in mag.reshape(-1, mag.shape[-1])]).reshape(len(x), 64, 64)
    db = 20 * np.log10(np.maximum(band_mag, 10 ** (floor / 20)))
    return db.transpose(0, 2, 1).astype(np.float32)  # (B, bands, frames)


def _other_picture(waves: np.ndarray) -> np.ndarray:
    return log_picture(waves, floor=-60.0)


pictured = FunctionGenerator(SPACE, render_clips, sample_rate=8000, n_samples=N_SAMPLES, name="toy", version="1",
                             spectrogram=log_picture, spectrogram_range=(PICTURE_FLOOR, 0.0))
# the same sound, another picture: a model fitted on ``pictured`` must refuse it
repictured = FunctionGenerator(SPACE, render_clips, sample_rate=8000, n_samples=N_SAMPLES, name="toy", version="1",
                               spectrogram=_other_picture, spectrogram_range=(PICTURE_FLOOR, 0.0))


# -- generators with noise and a seed, for the same-sound floor --------------------------------
def _noise_row(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(N_SAMPLES)


def _fixed_noise(params: np.ndarray, seed: int | None = None) -> np.ndarray:
    """The toy plus one noise row for every patch (a fixed table): parameters next to a patch reproduce its noise."""
    noise = _noise_row(0 if seed is None else seed + 1)
    return (render_clips(params) + 0.3 * params[:, 1:2] * noise).astype(np.float32)


def _patch_noise(params: np.ndarray, seed: int | None = None) -> np.ndarray:
    """The toy plus noise seeded by a hash of the patch (salted by ``seed``): any other patch, or seed, has other noise."""
    salt = b"" if seed is None else b"seed" + int(seed).to_bytes(8, "little")
    rows = np.asarray(params, dtype="<f8")
    noise = np.stack([_noise_row(int.from_bytes(hashlib.sha256(row.tobytes() + salt).digest()[:8], "little")) for row in rows])
    return (render_clips(params) + 0.3 * params[:, 1:2] * noise).astype(np.float32)


fixed_noise = _make(_fixed_noise, name="fixed-noise")
patch_noise = _make(_patch_noise, name="patch-noise")


def _marked_picture(waves: np.ndarray) -> np.ndarray:
    """``log_picture``; with ``TOYGEN_MARKER`` set, a batch of clips (not the one-clip probe) first touches that
    file, then sleeps ``TOYGEN_DELAY`` seconds: a fit caught reading its training pictures, for a signal to stop."""
    marker = os.environ.get("TOYGEN_MARKER")
    if marker and len(waves) > 1:
        with open(marker, "a"):
            pass
        time.sleep(float(os.environ.get("TOYGEN_DELAY", "0.02")))
    return log_picture(waves)


# ``pictured`` that can be caught mid-fit: the same identity and picture
marked = FunctionGenerator(SPACE, render_clips, sample_rate=8000, n_samples=N_SAMPLES, name="toy", version="1",
                           spectrogram=_marked_picture, spectrogram_range=(PICTURE_FLOOR, 0.0))


# -- the toy as a torch program: a differentiable render for the gradient stage -----------------
def _render_torch(params):
    import torch

    t = torch.arange(N_SAMPLES, dtype=params.dtype) / 8000.0
    phase = 2 * torch.pi * params[:, 0:1] * t
    shape = params[:, 2:3]
    wave = torch.where(shape == 0, torch.sin(phase), torch.where(shape == 1, torch.sign(torch.sin(phase)), torch.remainder(phase / torch.pi, 2) - 1))
    noise = torch.sin(1e3 * params[:, 0:1] * t**2)
    return params[:, 1:2] * (0.8 * wave + 0.2 * noise)


differentiable = FunctionGenerator(SPACE, render_clips, sample_rate=8000, n_samples=N_SAMPLES, name="toy", version="1",
                                   render_torch=_render_torch)


def _torch_fails(params):
    raise ZeroDivisionError("a bug in the user's torch code")


torch_fails = FunctionGenerator(SPACE, render_clips, sample_rate=8000, n_samples=N_SAMPLES, name="toy", version="1",
                                render_torch=_torch_fails)
