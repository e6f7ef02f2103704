"""synth100 with a picture of its own: how a user plugs in the spectrogram their algorithm makes.

The sound is wavinv's built-in ``synth100`` (the same 100 parameters, 16 kHz,
16,352 samples, the same bytes for the same parameters and seed). The picture
is not wavinv's: it stands for the spectrogram a user's own code draws beside
the audio, here a log-frequency one, 512 bands x 512 frames:

- a 1024-point Hann STFT of the clip (``torch.stft``, zero-padded by half a
  window at each end), hop 32, 512 frames;
- magnitudes normalised so a full-scale sine at a bin's frequency reads 0 dB,
  read on 512 log-spaced bands from 50 Hz to 8 kHz: a band that holds FFT bins
  reads its loudest one; a band that holds none (most bands below 800 Hz, a few
  up to 1.5 kHz) reads the magnitude at its centre, interpolated between the bins around it;
- ``20 log10``, floored at -100 dB; rows are bands, low frequencies first.

wavinv records a probe of this function with every store and model made with
it (``wavinv.picture``), so a model never meets another picture silently.

Use: ``wavinv generate --generator examples/synth100_own_picture.py:synth --n 20000 --out data/own-picture``;
every fit, target and ranking on that store then uses this picture.
"""

from __future__ import annotations

import functools

import numpy as np

from wavinv import FunctionGenerator
from wavinv.generators import load_generator

N_FFT, HOP, N_FRAMES, N_BANDS = 1024, 32, 512, 512
F_LOW, F_HIGH = 50.0, 8000.0
FLOOR_DB = -100.0


@functools.lru_cache(maxsize=1)
def _bands(sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per band: the FFT bins inside it (``(bands, width)``, a band's last bin repeated to fill), whether it
    holds any, and for one that holds none, the bin below its centre and the weight of the bin above."""
    centres = np.geomspace(F_LOW, F_HIGH, N_BANDS)
    edges = np.sqrt(centres[:-1] * centres[1:])
    edges = np.concatenate([[centres[0] ** 2 / edges[0]], edges, [centres[-1] ** 2 / edges[-1]]])
    hz = sample_rate / N_FFT
    first = np.ceil(edges[:-1] / hz).astype(np.int64)
    last = np.minimum(np.ceil(edges[1:] / hz).astype(np.int64) - 1, N_FFT // 2)
    width = max(int((last - first).max()) + 1, 1)
    inside = np.minimum(first[:, None] + np.arange(width), np.maximum(last, first)[:, None])
    position = centres / hz
    low = np.minimum(np.floor(position).astype(np.int64), N_FFT // 2 - 1)
    return inside, last >= first, np.stack([low, position - low])


def picture(waves: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """dB pictures ``(B, 512 bands, 512 frames)`` float32 of clips ``(B, n_samples)``."""
    import torch

    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    window = torch.hann_window(N_FFT, periodic=False, dtype=torch.float32)
    with torch.no_grad():
        spec = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
        mag = spec.abs()[:, :, :N_FRAMES] / (N_FFT / 4)  # (B, bins, frames)
        if mag.shape[-1] < N_FRAMES:  # a short clip: the floor's frames after it
            mag = torch.nn.functional.pad(mag, (0, N_FRAMES - mag.shape[-1]))
        inside, has_bins, (low, frac) = _bands(sample_rate)
        low = torch.from_numpy(low.astype(np.int64))
        frac = torch.from_numpy(frac).to(torch.float32)[:, None]
        # a band wider than a bin: its loudest bin (a sine anywhere in it reads its level);
        # a narrower one: the magnitude at its centre, between the two bins around it
        widest = mag[:, torch.from_numpy(inside)].amax(dim=2)
        between = mag[:, low] * (1.0 - frac) + mag[:, low + 1] * frac
        bands = torch.where(torch.from_numpy(has_bins)[:, None], widest, between)
        db = 20.0 * torch.log10(bands.clamp_min(10.0 ** (FLOOR_DB / 20.0)))
    return db.numpy().astype(np.float32, copy=False)


@functools.lru_cache(maxsize=1)
def synth() -> FunctionGenerator:
    """The generator (a zero-argument factory, so ``file.py:synth`` builds it on first use)."""
    base = load_generator("synth100")

    def render(params: np.ndarray, seed: int | None = None) -> np.ndarray:
        return base.render(params, seed=seed)

    return FunctionGenerator(
        base.space,
        render,
        sample_rate=base.sample_rate,
        n_samples=base.n_samples,
        name="synth100-own-picture",
        version="1",
        spectrogram=lambda waves: picture(waves, base.sample_rate),
        spectrogram_range=(FLOOR_DB, 0.0),
    )
