"""``spec-cnn``: the spectrogram frontend as the first layer, then a 2D CNN.

Given waveforms ``(N, T)``, the network's first layer is ``wavinv.frontend.
Spectrogram`` (nnAudio kernels on CUDA, ``torch.stft`` on CPU, as the frontend's
``backend="auto"`` picks), so spectrograms are made on the training device and
never stored. Given spectrograms ``(N, F, T)`` the frontend is skipped.

The encoder average-pools the dB spectrogram by ``pool``, then strided 3x3
convolutions (batch norm, GELU) halve both axes per layer. Pooling runs over
time only: frequency position (pitch, formants) stays in the feature vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..frontend import Spectrogram, frontend_config
from ..limits import positive_int
from .neural import NeuralInverter, check_channels

__all__ = ["SpecCNNInverter"]


class _SpecEncoder(nn.Module):
    def __init__(self, channels: tuple[int, ...], pool: int):
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        c_in = 1
        for i, c in enumerate(channels):
            k = 5 if i == 0 else 3
            layers += [nn.Conv2d(c_in, c, k, stride=2, padding=k // 2), nn.BatchNorm2d(c), nn.GELU()]
            c_in = c
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x[:, None])  # (B, C, F', T')
        return h.mean(dim=-1).flatten(1)  # pool over time, keep frequency


def spec_cnn_encoder(n_freq: int, n_frames: int, channels: tuple[int, ...], pool: int) -> tuple[nn.Module, int]:
    """The encoder ``(B, F, T) -> (B, D)`` and its output size ``D``."""
    enc = _SpecEncoder(channels, pool)
    with torch.no_grad():
        enc.eval()
        dim = enc(torch.zeros(1, n_freq, n_frames)).shape[1]
    return enc, int(dim)


@dataclass(eq=False, repr=False, kw_only=True)
class SpecCNNInverter(NeuralInverter):
    """Invert from waveforms ``(N, T)`` through an on-device spectrogram frontend, or from spectrograms ``(N, F, T)``.

    Parameters
    ----------
    frontend : dict or None
        ``wavinv.frontend.FrontendConfig`` settings used when ``X`` holds waveforms
        (``None``: the frontend's defaults with ``n_samples`` from ``X``).
    channels, pool : the 2D CNN: one stride-2 conv layer per entry of ``channels``,
        after average-pooling the spectrogram by ``pool``.
    Other parameters: as ``NeuralInverter`` (head, sampler, latent, flow, training,
    checkpoint, device, n_threads, seed, progress).
    """

    frontend: dict | None = None
    channels: tuple[int, ...] = (16, 32, 64, 128, 128)
    pool: int = 4

    _kind = "spec-cnn"
    _checks = {**NeuralInverter._checks, "channels": check_channels, "pool": positive_int}

    def _encoder_config(self, X) -> dict[str, Any]:
        frontend = None
        if X.ndim == 2:
            try:
                frontend = frontend_config(**{"n_samples": int(X.shape[1]), **(self.frontend or {})})
            except InputError as e:
                raise InputError(f"spec-cnn: the frontend cannot take waveforms of {X.shape[1]} samples (rows of {X.shape[1]} feature(s)): {e}") from None
            if frontend["n_samples"] != X.shape[1]:
                raise InputError(f"spec-cnn: the frontend takes {frontend['n_samples']}-sample clips, X has {X.shape[1]}")
            n_freq, n_frames = frontend["n_freq"], frontend["n_frames"]
        else:
            n_freq, n_frames = int(X.shape[1]), int(X.shape[2])
        channels = [int(c) for c in self.channels]
        if min(n_freq, n_frames) // self.pool < 2 ** len(channels):
            raise InputError(f"spec-cnn: a {n_freq}x{n_frames} spectrogram is too small for pool={self.pool} and {len(channels)} stride-2 layers")
        return {"frontend": frontend, "n_freq": n_freq, "n_frames": n_frames, "channels": channels, "pool": int(self.pool)}

    @staticmethod
    def _build_encoder(config: dict[str, Any]) -> tuple[nn.Module, int, Spectrogram | None]:
        enc, dim = spec_cnn_encoder(config["n_freq"], config["n_frames"], tuple(config["channels"]), config["pool"])
        return enc, dim, Spectrogram.from_config(config["frontend"]) if config["frontend"] is not None else None
