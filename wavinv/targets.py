"""Reading and writing inversion targets: ``.wav``, ``.npy`` (waveform or spectrogram), ``.png``.

A target is either a waveform ``(T,)`` or a dB spectrogram ``(F, T)``. PNG
spectrograms are grayscale, low frequencies at the bottom, and their pixel values
span a dB range (``db_range``, the same default as ``save_spectrogram_png``) so a
PNG wavinv wrote reads back to the same spectrogram within one grey level.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from .errors import InputError
from .limits import require_memory
from .outputs import atomic_path

__all__ = ["Target", "DEFAULT_DB_RANGE", "load_target", "save_spectrogram_png", "save_wav"]

log = logging.getLogger(__name__)

DEFAULT_DB_RANGE = (-100.0, 0.0)


@dataclass
class Target:
    """A waveform ``(n_samples,)`` or a dB spectrogram ``(F, T)``, and where it came from."""

    kind: str  # "waveform" or "spectrogram"
    data: np.ndarray
    source: str

    @property
    def waveform(self) -> np.ndarray | None:
        return self.data if self.kind == "waveform" else None


_F32_MAX = float(np.finfo(np.float32).max)


def _check_finite(x: np.ndarray, source: str) -> np.ndarray:
    """``x`` as float32, refusing empty arrays, NaN or Inf, and values float32 cannot hold."""
    if x.size == 0:
        raise InputError(f"{source}: the target is empty")
    if np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            raise InputError(f"{source}: the target contains NaN or Inf ({int((~finite).sum())} values)")
    peak = float(np.abs(x).max())
    if peak > _F32_MAX:
        raise InputError(f"{source}: the target holds values too large for float32 (largest magnitude {peak:.3g})")
    return np.asarray(x, dtype=np.float32)


def _fit_length(wave: np.ndarray, n_samples: int, source: str, pad: bool) -> np.ndarray:
    if len(wave) == n_samples:
        return wave
    if not pad:
        raise InputError(f"{source}: waveform has {len(wave)} samples, the generator makes {n_samples} (--pad, or pad=True, pads or crops it)")
    log.warning("%s: %d samples, padding/cropping to the generator's %d", source, len(wave), n_samples)
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, len(wave))] = wave[:n_samples]
    return out


def _load_wav(path: Path, sample_rate: int, n_samples: int, pad: bool) -> Target:
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own error types for truncated or foreign files
        raise InputError(f"{path}: not a readable WAV file ({e})") from None
    wave = data.mean(axis=1)
    if sr != sample_rate:
        from scipy.signal import resample_poly

        log.warning("%s: resampling from %d Hz to the generator's %d Hz", path, sr, sample_rate)
        g = gcd(int(sr), int(sample_rate))
        wave = resample_poly(wave, sample_rate // g, sr // g).astype(np.float32)
    wave = _check_finite(wave, str(path))
    return Target("waveform", _fit_length(wave, n_samples, str(path), pad), str(path))


def _load_npy(path: Path, n_samples: int, spec_shape: tuple[int, int] | None, pad: bool) -> Target:
    try:
        x = np.load(path, allow_pickle=False, mmap_mode="r")  # the header first: the size is checked before reading
    except Exception as e:
        raise InputError(f"{path}: not a readable .npy array ({e})") from None
    require_memory(2 * x.size * max(4, x.dtype.itemsize), f"{path} ({'x'.join(map(str, x.shape))} {x.dtype})")
    x = np.array(x)
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise InputError(f"{path}: expected a numeric array, got dtype {x.dtype}")
    x = _check_finite(x, str(path))
    if x.ndim == 1:
        return Target("waveform", _fit_length(x, n_samples, str(path), pad), str(path))
    if x.ndim == 2:
        if spec_shape is not None and x.shape != tuple(spec_shape):
            raise InputError(f"{path}: spectrogram has shape {x.shape}, the model's frontend makes {tuple(spec_shape)}")
        return Target("spectrogram", x, str(path))
    raise InputError(f"{path}: expected a waveform (T,) or a spectrogram (F, T), got shape {x.shape}")


# PNG modes read as grey levels, and the largest level of each (16-bit PNGs open as I;16 or I)
_PNG_LEVELS = {"L": 255.0, "LA": 255.0, "P": 255.0, "RGB": 255.0, "RGBA": 255.0, "1": 255.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0}


def _load_png(path: Path, spec_shape: tuple[int, int] | None, db_range: tuple[float, float]) -> Target:
    from PIL import Image, UnidentifiedImageError

    lo, hi = db_range
    if not hi > lo:
        raise InputError(f"db range must be low < high, got {db_range}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                cols, rows = im.size
                if spec_shape is not None and (rows, cols) != tuple(spec_shape):  # refused before decoding a pixel
                    raise InputError(f"{path}: image is {rows}x{cols} (rows x cols), the model's frontend makes {spec_shape[0]}x{spec_shape[1]}")
                if im.mode not in _PNG_LEVELS:
                    raise InputError(f"{path}: image mode {im.mode} is not a grayscale spectrogram (use 8- or 16-bit grayscale)")
                levels = _PNG_LEVELS[im.mode]
                im.load()
                if levels == 255.0:
                    img = np.asarray(im.convert("L"), dtype=np.float32)
                else:  # 16-bit grey: keep every level (convert("L") would clip them to 255)
                    img = np.asarray(im, dtype=np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{path}: image too large to decode safely ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    if levels == 65535.0 and img.max() > levels:
        raise InputError(f"{path}: image holds grey levels above 16 bits (max {img.max():.0f})")
    # image rows run top-down; spectrogram bins run from low frequency up
    spec = lo + (img[::-1] / levels) * (hi - lo)
    return Target("spectrogram", np.ascontiguousarray(spec, dtype=np.float32), str(path))


def load_target(
    path: str | os.PathLike,
    sample_rate: int,
    n_samples: int,
    spec_shape: tuple[int, int] | None = None,
    db_range: tuple[float, float] = DEFAULT_DB_RANGE,
    pad: bool = False,
) -> Target:
    """Read a target file; every problem is an ``InputError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"target not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".wav":
        return _load_wav(path, sample_rate, n_samples, pad)
    if suffix == ".npy":
        return _load_npy(path, n_samples, spec_shape, pad)
    if suffix == ".png":
        return _load_png(path, spec_shape, db_range)
    raise InputError(f"{path}: unsupported target type {suffix!r} (use .wav, .npy or .png)")


def save_spectrogram_png(spec: np.ndarray, path: str | os.PathLike, db_range: tuple[float, float] = DEFAULT_DB_RANGE) -> None:
    """Write a dB spectrogram ``(F, T)`` as an 8-bit grayscale PNG, low frequencies at the bottom."""
    from PIL import Image

    lo, hi = db_range
    if not hi > lo:
        raise InputError(f"db range must be low < high, got {db_range}")
    img = np.clip((np.asarray(spec, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    img = np.rint(img[::-1] * 255.0).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def save_wav(wave: np.ndarray, path: str | os.PathLike, sample_rate: int) -> None:
    """Write a float waveform as 16-bit PCM WAV (clipped to [-1, 1]).

    The WAV is encoded in memory and written by Python, so a write that fails (a full
    disk, a file-size limit) is an ``OSError`` that names its cause (``OutputError``
    from ``atomic_path``), not libsndfile's bare "System error".
    """
    import soundfile as sf

    encoded = io.BytesIO()
    sf.write(encoded, np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.getvalue())
