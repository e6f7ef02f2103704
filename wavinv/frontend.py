"""The spectrogram frontend: waveforms ``(B, T)`` -> log-magnitude spectrograms ``(B, F, T')`` in dB.

``Spectrogram`` is a torch module (so a network can use it as its first layer,
with autograd); ``spectrogram`` is the batched numpy convenience around it and
``SpectrogramTransformer`` the scikit-learn wrapper.

Levels are ``20 log10`` of a magnitude normalised so that a full-scale sine at
a bin's frequency reads 0 dB, floored at ``amin`` (1e-5 -> -100 dB). Three kinds:

- ``"stft"``: the first ``n_freq`` bins of a Hann-window STFT with
  ``n_fft = 2 * n_freq`` (linear frequency, Nyquist dropped).
- ``"mel"``: the normalised STFT power through ``n_freq`` Slaney-scale
  triangles of peak 1, with the smallest power-of-two ``n_fft`` >= ``2 * n_freq``
  that leaves no band without an FFT bin.
- ``"cqt"``: nnAudio's ``CQT1992v2`` (``n_freq`` log-spaced bins in
  ``[fmin, fmax)``), its longest kernel capped at about a quarter of the clip.

Frames are centred, hop ``n_samples // (n_frames - 1)``, cropped at the end (or
padded with the floor) to exactly ``n_frames``. ``stft`` and ``mel`` have two
backends giving the same numbers: nnAudio's conv1d Fourier kernels (buffers
that ``.to(device)`` moves; trainable if asked) and ``torch.stft``. ``"auto"``
uses ``torch.stft`` on CPU, where it is 2-3.5x faster
(``benchmarks/frontend_speed.py``), and nnAudio on other devices.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from nnAudio.features import CQT1992v2, STFT
from nnAudio.librosa_functions import get_mel, mel_frequencies
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from .device import default_device, resolve_device
from .errors import InputError
from .lazy import LazyArray, clip_batch, iter_batches
from .limits import int_arg

__all__ = ["FrontendConfig", "Spectrogram", "SpectrogramTransformer", "spectrogram", "DEFAULT_SAMPLE_RATE", "DEFAULT_N_SAMPLES"]

logger = logging.getLogger(__name__)

KINDS = ("stft", "mel", "cqt")
BACKENDS = ("auto", "nnaudio", "torch")
DEFAULT_SAMPLE_RATE = 16000
DEFAULT_N_SAMPLES = 16352  # 511 * 32: 512 centred frames at hop 32, n_fft 1024: 512 x 512
CPU_BATCH = 4  # clips per STFT call on CPU; see default_batch_size
CQT_FMIN = 32.70  # C1, nnAudio's and librosa's default


def resolve_backend(backend: str, kind: str, device: torch.device | str) -> str:
    """The backend that actually runs: ``"auto"`` is torch.stft on CPU, nnAudio elsewhere; CQT is nnAudio only."""
    if kind == "cqt" or backend == "nnaudio":
        return "nnaudio"
    if backend == "torch":
        return "torch"
    return "torch" if torch.device(device).type == "cpu" else "nnaudio"

@dataclass(kw_only=True, eq=False)
class FrontendConfig:
    """The frontend's settings, declared once: ``Spectrogram``, ``frontend_config`` and
    ``SpectrogramTransformer`` all take these fields.

    ``n_fft``, ``hop_length``, ``fmin`` and ``fmax`` may be left ``None``:
    ``resolved()`` checks the settings and fills them in. Field order is the
    order of the recorded dict (``as_dict``), which stores and models keep.
    """

    kind: str = "stft"
    sample_rate: int = DEFAULT_SAMPLE_RATE
    n_samples: int = DEFAULT_N_SAMPLES
    n_freq: int = 512
    n_frames: int = 512
    n_fft: int | None = None
    hop_length: int | None = None
    fmin: float | None = None
    fmax: float | None = None
    amin: float = 1e-5  # magnitude floor: -100 dB
    backend: str = "auto"
    trainable: bool = False

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "FrontendConfig":
        """Settings from a dict (``as_dict()``, or a store's or model's recorded frontend); unknown keys are an ``InputError``."""
        if not isinstance(cfg, Mapping):
            raise InputError(f"a frontend config must be a dict, got {type(cfg).__name__}")
        unknown = sorted(set(cfg) - set(SETTINGS))
        if unknown:
            raise InputError(f"unknown frontend config keys: {', '.join(map(str, unknown))}")
        return cls(**cfg)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types (only ``FrontendConfig``'s own fields, also for subclasses)."""
        return {name: getattr(self, name) for name in SETTINGS}

    def resolved(self) -> "FrontendConfig":
        """Checked settings with the derived ones (``n_fft``, ``hop_length``, ``fmin``, ``fmax``) filled in; ``InputError`` if bad."""
        kind, backend, trainable = _check_modes(self.kind, self.backend, self.trainable)
        sample_rate, n_samples = int_arg("sample_rate", self.sample_rate, 1), int_arg("n_samples", self.n_samples, 1)
        n_freq, n_frames = int_arg("n_freq", self.n_freq, 1), int_arg("n_frames", self.n_frames, 1)
        amin = _amin(self.amin)
        fmin, fmax = _band(kind, self.fmin, self.fmax, sample_rate / 2)
        n_fft = _fft_size(kind, sample_rate, n_samples, n_freq, fmin, fmax, self.n_fft)
        hop_length = self.hop_length
        if hop_length is None:
            hop_length = max(1, n_samples // (n_frames - 1)) if n_frames > 1 else n_samples
        return FrontendConfig(
            kind=kind, sample_rate=sample_rate, n_samples=n_samples, n_freq=n_freq, n_frames=n_frames, n_fft=n_fft,
            hop_length=int_arg("hop_length", hop_length, 1), fmin=fmin, fmax=fmax, amin=amin, backend=backend, trainable=trainable,
        )  # fmt: skip


SETTINGS = tuple(f.name for f in fields(FrontendConfig))


def frontend_config(**settings: Any) -> dict[str, Any]:
    """Validate frontend settings (``FrontendConfig``'s fields) and fill in the derived ones (``n_fft``, ``hop_length``, ``fmin``, ``fmax``).

    The result is plain JSON and rebuilds the same frontend with
    ``Spectrogram.from_config``; stores and models record it. Bad settings raise
    ``InputError``.
    """
    return FrontendConfig.from_dict(settings).resolved().as_dict()


def _check_modes(kind: Any, backend: Any, trainable: Any) -> tuple[str, str, bool]:
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if kind == "cqt" and backend == "torch":
        raise InputError("kind='cqt' has only the nnAudio backend: use backend='nnaudio' or 'auto'")
    if not isinstance(trainable, (bool, np.bool_)):
        raise InputError(f"trainable must be True or False, got {trainable!r}")
    if trainable and backend != "nnaudio":
        raise InputError("trainable kernels need backend='nnaudio'")
    return kind, backend, bool(trainable)


def _amin(amin: Any) -> float:
    try:
        amin = float(amin)
    except (TypeError, ValueError):
        raise InputError(f"amin must be a number, got {amin!r}") from None
    if not 0.0 < amin < 1.0:
        raise InputError(f"amin must be in (0, 1), got {amin}")
    return amin


def _band(kind: str, fmin: Any, fmax: Any, nyquist: float) -> tuple[float | None, float | None]:
    """``(fmin, fmax)`` in Hz for mel and CQT (defaults filled in); ``(None, None)`` for the STFT, which spans all."""
    if kind == "stft":
        if fmin is not None or fmax is not None:
            raise InputError("fmin and fmax apply to kind='mel' and 'cqt' only; the STFT spans 0 Hz to Nyquist")
        return None, None
    if fmin is None:
        fmin = CQT_FMIN if kind == "cqt" else 0.0
    fmin = _frequency("fmin", fmin)
    fmax = _frequency("fmax", nyquist if fmax is None else fmax)
    if not fmin < fmax <= nyquist:
        raise InputError(f"need fmin < fmax <= sample_rate / 2 = {nyquist:g} Hz, got fmin={fmin:g}, fmax={fmax:g}")
    if kind == "cqt" and fmin <= 0:
        raise InputError(f"kind='cqt' needs fmin > 0 Hz, got {fmin:g}")
    return fmin, fmax


def _fft_size(kind: str, sample_rate: int, n_samples: int, n_freq: int, fmin: float | None, fmax: float | None, n_fft: Any) -> int:
    """``n_fft``, or its default for ``kind``; refused when the clip or the STFT's bins cannot hold it."""
    if n_fft is None:
        if kind == "stft":
            n_fft = 2 * n_freq
        elif kind == "mel":
            # the largest power of two whose half (the reflect padding) is shorter than the clip
            n_fft = _mel_n_fft(sample_rate, n_freq, fmin, fmax, _pow2_floor(2 * n_samples - 1))
        else:
            n_fft = _pow2_floor(n_samples / 4 * math.sqrt(2))  # the nearest power of two to a quarter clip
    n_fft = int_arg("n_fft", n_fft, 1)
    # nnAudio zero-pads CQT kernels to a power of two, and reflect padding needs half of it < n_samples
    span = 1 << (n_fft - 1).bit_length() if kind == "cqt" else n_fft
    if span // 2 >= n_samples:
        raise InputError(f"n_fft={n_fft} is too long for {n_samples}-sample clips (need n_fft // 2 < n_samples); lower n_freq or n_fft")
    if kind == "stft" and n_freq > n_fft // 2 + 1:
        raise InputError(f"an STFT with n_fft={n_fft} has only {n_fft // 2 + 1} bins, asked for n_freq={n_freq}")
    return n_fft


def _frequency(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number in Hz, got {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise InputError(f"{name} must be a finite frequency >= 0 Hz, got {value!r}")
    return out


def _pow2_floor(n: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(n))))


def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    with warnings.catch_warnings():
        # an empty band is checked (and reported) by the caller
        warnings.filterwarnings("ignore", message="Empty filters detected", category=UserWarning)
        return get_mel(sample_rate, n_fft, n_mels, fmin, fmax, htk=False, norm=None)


def _cqt_bins_per_octave(cfg: FrontendConfig) -> float:
    return cfg.n_freq / math.log2(cfg.fmax / cfg.fmin)


def _cqt_filter_scale(cfg: FrontendConfig) -> float:
    """Scale Q down so the lowest (longest) kernel is at most ``n_fft`` samples."""
    q_natural = 1.0 / (2.0 ** (1.0 / _cqt_bins_per_octave(cfg)) - 1.0)
    longest = q_natural * cfg.sample_rate / cfg.fmin
    # the margin keeps nnAudio's ceil() from rounding the capped length up to the next power of two
    return min(1.0, cfg.n_fft / longest * (1.0 - 1e-9))


def _mel_n_fft(sample_rate: int, n_mels: int, fmin: float, fmax: float, max_fft: int) -> int:
    """The smallest power-of-two FFT >= 2 * n_mels in which every mel band covers an FFT bin."""
    n_fft = 1 << (2 * n_mels - 1).bit_length()
    while n_fft <= max_fft:
        if _mel_basis(sample_rate, n_fft, n_mels, fmin, fmax).max(axis=1).min() > 0:
            return n_fft
        n_fft *= 2
    raise InputError(
        f"{n_mels} mel bands from {fmin:g} to {fmax:g} Hz are too narrow for these clips: "
        "every FFT size leaves some band empty; use fewer bands (n_freq) or a higher fmin"
    )


def _power(z: torch.Tensor) -> torch.Tensor:
    """Squared magnitude of ``(..., 2)`` real/imaginary pairs (no sqrt: its gradient is infinite at 0)."""
    return z[..., 0].square() + z[..., 1].square()


def _unsave_buffers(module: torch.nn.Module) -> None:
    """Keep fixed kernels out of ``state_dict``: they follow from the config (a CQT's are 16 MB).

    Trained kernels are parameters, which stay in it."""
    for name, buf in list(module.named_buffers(recurse=False)):
        module.register_buffer(name, buf, persistent=False)


class Spectrogram(torch.nn.Module):
    """Waveforms ``(B, n_samples)`` -> dB spectrograms ``(B, n_freq, n_frames)``, float32.

    Settings: a ``FrontendConfig`` (or its dict) and/or its fields as keywords. Inputs must be finite floating tensors
    on the module's device (move the module with ``.to(device)``); anything
    else raises ``InputError``. Differentiable, also under ``torch.no_grad()``.
    """

    def __init__(self, config: FrontendConfig | Mapping[str, Any] | None = None, **settings: Any):
        super().__init__()
        base = config.as_dict() if isinstance(config, FrontendConfig) else dict(config or {})
        cfg = FrontendConfig.from_dict({**base, **settings}).resolved()
        self.settings = cfg
        kind, n_fft = cfg.kind, cfg.n_fft
        self._nnaudio = _nnaudio_module(cfg)
        if self._nnaudio is not None:
            _unsave_buffers(self._nnaudio)
        if kind != "cqt" and cfg.backend != "nnaudio":
            self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        if kind == "mel":
            basis = _mel_basis(cfg.sample_rate, n_fft, cfg.n_freq, cfg.fmin, cfg.fmax)
            if basis.max(axis=1).min() <= 0:
                logger.warning("n_fft=%d leaves some of the %d mel bands without an FFT bin: they read the floor", n_fft, cfg.n_freq)
            self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        # STFT and mel: a unit sine at a bin centre has |X| = sum(hann) / 2 = n_fft / 4
        self._power_scale = (n_fft / 4) ** 2

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Spectrogram":
        """Rebuild from ``config()`` (also a store's or model's recorded frontend dict)."""
        if isinstance(cfg, Mapping) and cfg.get("kind") == "generator":
            raise InputError("this frontend is the generator's own spectrogram function: build it with wavinv.picture.picture_for(config, generator)")
        return cls(FrontendConfig.from_dict(cfg))

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this frontend, as plain JSON types."""
        return self.settings.as_dict()

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def n_samples(self) -> int:
        return self.settings.n_samples

    @property
    def n_freq(self) -> int:
        return self.settings.n_freq

    @property
    def n_frames(self) -> int:
        return self.settings.n_frames

    @property
    def output_shape(self) -> tuple[int, int]:
        return (self.n_freq, self.n_frames)

    @property
    def floor_db(self) -> float:
        return 20.0 * math.log10(self.settings.amin)

    @property
    def device(self) -> torch.device:
        return next(iter(self.buffers())).device

    @property
    def frequencies(self) -> np.ndarray:
        """Centre frequency in Hz of each output row."""
        cfg = self.settings
        if cfg.kind == "stft":
            return np.arange(cfg.n_freq) * cfg.sample_rate / cfg.n_fft
        if cfg.kind == "mel":
            return mel_frequencies(cfg.n_freq + 2, fmin=cfg.fmin, fmax=cfg.fmax, htk=False)[1:-1]
        return np.asarray(self._nnaudio.frequencies, dtype=np.float64)

    def every_nth_frame(self, step: int) -> "Spectrogram":
        """A frontend whose frame ``j`` equals this one's frame ``j * step`` (hop times ``step``).

        The same window and padding at a longer hop computes only every ``step``-th
        column, ``step`` times cheaper: the inverter shortlists candidates with it.
        STFT and mel only (a CQT's frames are not independent of the hop).
        """
        step = int_arg("step", step, 1)
        if self.kind == "cqt":
            raise InputError("every_nth_frame needs kind='stft' or 'mel'")
        cfg = replace(self.settings, hop_length=self.settings.hop_length * step, n_frames=-(-self.settings.n_frames // step))
        return Spectrogram(cfg).to(self.device)

    def backend_for(self, device: torch.device | str) -> str:
        """Which backend runs for inputs on ``device``."""
        return resolve_backend(self.settings.backend, self.settings.kind, device)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        x = self._check(waves)
        if x.device.type == "cpu" and len(x) > CPU_BATCH and self.kind != "cqt":
            # a few clips at a time keep the STFT's buffers in cache (see default_batch_size);
            # autograd flows through the concatenation as through one call. (nnAudio's CQT is a
            # convolution whose rounding depends on the batch: it keeps whole batches.)
            return torch.cat([self._db(chunk) for chunk in x.split(CPU_BATCH)])
        return self._db(x)

    def _db(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.settings
        if cfg.kind == "cqt":
            # "wrap" normalisation reads 1 for a unit sine at a bin's frequency
            power = _power(self._nnaudio(x, output_format="Complex", normalization_type="wrap"))
        else:
            if self.backend_for(x.device) == "nnaudio":
                power = _power(self._nnaudio(x, output_format="Complex"))
            else:
                z = torch.stft(
                    x,
                    cfg.n_fft,
                    hop_length=cfg.hop_length,
                    window=self.window,
                    center=True,
                    pad_mode="reflect",
                    return_complex=True,
                )
                if cfg.kind == "stft":
                    z = z[:, : cfg.n_freq]
                power = _power(torch.view_as_real(z))
            power = power.div_(self._power_scale)
            if cfg.kind == "mel":
                power = torch.matmul(self.mel_basis, power)
        # in place only where autograd keeps no copy: log10 saves its input, not its output
        db = torch.log10(power.clamp_min(cfg.amin ** 2)).mul_(10.0)
        n = db.shape[-1]
        if n > cfg.n_frames:
            return db[..., : cfg.n_frames].contiguous()
        if n < cfg.n_frames:
            return F.pad(db, (0, cfg.n_frames - n), value=self.floor_db)
        return db

    def _check(self, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise InputError(f"Spectrogram takes a torch tensor (B, {self.n_samples}); got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.n_samples:
            raise InputError(f"waveforms must have shape (B, {self.n_samples}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"waveforms must be floating point, got {x.dtype}")
        if x.device != self.device:
            raise InputError(f"waveforms are on {x.device} but the frontend is on {self.device}: move one of them")
        x = x.float()
        if not bool(torch.isfinite(x).all()):
            raise InputError("waveforms contain NaN or Inf")
        return x


def _nnaudio_module(cfg: FrontendConfig) -> torch.nn.Module | None:
    """nnAudio's kernels for ``cfg`` (None when only ``torch.stft`` runs)."""
    if cfg.kind == "cqt":
        return CQT1992v2(
            sr=cfg.sample_rate,
            hop_length=cfg.hop_length,
            fmin=cfg.fmin,
            n_bins=cfg.n_freq,
            bins_per_octave=_cqt_bins_per_octave(cfg),
            filter_scale=_cqt_filter_scale(cfg),
            trainable=cfg.trainable,
            output_format="Complex",
            verbose=False,
        )
    if cfg.backend == "torch":
        return None
    return STFT(
        n_fft=cfg.n_fft,
        freq_bins=cfg.n_freq if cfg.kind == "stft" else None,
        hop_length=cfg.hop_length,
        sr=cfg.sample_rate,
        window="hann",
        center=True,
        pad_mode="reflect",
        trainable=cfg.trainable,
        output_format="Complex",  # see _power
        verbose=False,
    )


def _check_rows(rows: np.ndarray) -> np.ndarray:
    """A batch of clips as contiguous float32, or ``InputError`` (NaN and Inf are refused by the module's own check)."""
    if not np.issubdtype(rows.dtype, np.floating):
        raise InputError(f"waveforms must be floating point (full scale = 1.0), got dtype {rows.dtype}")
    return np.ascontiguousarray(rows, dtype=np.float32)


def default_batch_size(device: torch.device | str) -> int:
    """Clips per ``spectrogram()`` batch: ``CPU_BATCH`` on CPU, 64 on an accelerator.

    On CPU small calls keep the STFT's buffers in cache (4 clips per call ran
    2.7x faster than 64 in ``benchmarks/frontend_speed.py --sweep``); the module
    itself splits bigger CPU batches the same way, but batches of ``CPU_BATCH``
    also spare the large output tensors: invert's scoring stage took 0.22-0.24 s
    this way against 0.26-0.32 s in batches of 64 (``benchmarks/invert_speed.py``,
    one run each). A GPU wants big batches.
    """
    return CPU_BATCH if torch.device(device).type == "cpu" else 64


def _as_frontend(config: Spectrogram | Mapping[str, Any] | None) -> Spectrogram:
    if config is None:
        return Spectrogram()
    if isinstance(config, Spectrogram):
        return config
    return Spectrogram.from_config(config)


def spectrogram(
    waves: np.ndarray | LazyArray,
    config: Spectrogram | Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """dB spectrograms of clips ``(N, T)`` -> ``(N, F, T')`` float32; a single clip ``(T,)`` -> ``(F, T')``.

    ``config``: a ``Spectrogram`` (moved to ``device`` when one is given), a
    config dict, or None for the default 512 x 512 frontend. ``device``
    defaults to the module's own device when a module is given, else
    ``default_device()``. Works ``batch_size`` clips at a time (default:
    ``default_batch_size(device)``), so besides the result memory stays
    bounded; ``waves`` may be a ``LazyArray``. ``config`` may also be a
    ``wavinv.picture.GeneratorPicture`` (the generator's own function).
    """
    if getattr(config, "kind", None) == "generator":
        return config.transform(waves, batch_size, progress)
    frontend = _as_frontend(config)
    if device is None:
        device = frontend.device if isinstance(config, Spectrogram) else default_device()
    device = resolve_device(device)
    batch_size = default_batch_size(device) if batch_size is None else int_arg("batch_size", batch_size, 1)
    frontend.to(device)
    waves, single = clip_batch(waves, frontend.n_samples)
    out = np.empty((len(waves), *frontend.output_shape), dtype=np.float32)
    with torch.inference_mode(), tqdm(total=len(waves), disable=not progress, desc="spectrograms", unit="clip") as bar:
        for sel, rows in iter_batches(waves, batch_size):
            x = torch.from_numpy(_check_rows(rows)).to(frontend.device)
            out[sel] = frontend(x).cpu().numpy()
            bar.update(len(sel))
    return out[0] if single else out


@dataclass(kw_only=True, eq=False, repr=False)
class SpectrogramTransformer(TransformerMixin, BaseEstimator, FrontendConfig):
    """scikit-learn transformer: clips ``(N, n_samples)`` -> dB spectrograms ``(N, n_freq, n_frames)``.

    Hyper-parameters: ``FrontendConfig``'s fields, then how to run it (``batch_size``,
    ``device``, ``progress``). Stateless: ``fit`` only validates the settings and
    ``X``. ``X`` may be a numpy array or a ``LazyArray``; memory beyond the
    result stays bounded by ``batch_size``. ``device=None`` means
    ``default_device()`` at transform time.
    """

    batch_size: int | None = None
    device: str | None = None
    progress: bool = False

    def fit(self, X, y=None) -> "SpectrogramTransformer":
        cfg = self.resolved()
        if self.batch_size is not None:
            int_arg("batch_size", self.batch_size, 1)
        if self.device is not None:
            resolve_device(self.device)
        shape = X.shape if isinstance(X, LazyArray) else np.shape(X)
        if len(shape) != 2 or shape[1] != cfg.n_samples:
            raise InputError(f"X must have shape (N, {cfg.n_samples}), got {tuple(shape)}")
        self.frontend_config_ = cfg.as_dict()
        self.n_features_in_ = cfg.n_samples
        return self

    def transform(self, X) -> np.ndarray:
        if not isinstance(X, LazyArray) and np.ndim(X) != 2:
            raise InputError(f"X must have shape (N, {self.n_samples}), got {np.shape(X)}")
        return spectrogram(X, self._frontend(), self.batch_size, self.device or default_device(), self.progress)

    def _frontend(self) -> Spectrogram:
        # building the kernels costs more than a small batch: keep the module while the settings stay the same
        cfg = self.as_dict()
        cached = self.__dict__.get("_cache")
        if cached is None or cached[0] != cfg:
            cached = (cfg, Spectrogram(cfg))
            self._cache = cached
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_cache", None)  # rebuilt on demand, possibly on another device
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags
