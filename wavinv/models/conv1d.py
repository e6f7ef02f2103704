"""``conv1d``: a 1D convolutional encoder straight on the raw waveform.

Strided convolutions (each with batch normalisation and GELU) shrink the clip
by ``stride`` per layer; global average pooling over time turns the feature
map into one vector, and an MLP maps it to the latent. The first layer is a
wide learned filterbank (``first_kernel`` taps every ``first_stride`` samples:
128 taps every 1 ms at 16 kHz by default, the cost/resolution trade-off
measured in ``benchmarks/neural_speed.py``). Spectrogram rows ``(F, T)``
are accepted too: frequency bins become the input channels and the
convolutions run over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .neural import NeuralInverter, check_channels

__all__ = ["Conv1dInverter"]


def conv1d_encoder(in_channels: int, channels: tuple[int, ...], kernel_size: int, stride: int, first_kernel: int, first_stride: int) -> nn.Module:
    """``(B, T)`` or ``(B, C, T)`` -> ``(B, channels[-1])``."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for i, c in enumerate(channels):
        k, s = (first_kernel, first_stride) if i == 0 else (kernel_size, stride)
        layers += [nn.Conv1d(c_in, c, k, stride=s, padding=k // 2), nn.BatchNorm1d(c), nn.GELU()]
        c_in = c
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten()]
    return _Channels(nn.Sequential(*layers))


class _Channels(nn.Module):
    """Adds the channel axis to waveform batches ``(B, T)``."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x[:, None, :] if x.ndim == 2 else x)


@dataclass(eq=False, repr=False, kw_only=True)
class Conv1dInverter(NeuralInverter):
    """Invert from waveforms ``(N, T)`` (or spectrograms ``(N, F, T)``) with a strided 1D CNN.

    Parameters
    ----------
    channels, kernel_size, stride, first_kernel, first_stride :
        The encoder: one strided conv layer per entry of ``channels``; the first
        has ``first_kernel`` taps every ``first_stride`` samples.
    Other parameters: as ``NeuralInverter`` (head, sampler, latent, flow, training,
    checkpoint, device, n_threads, seed, progress).
    """

    channels: tuple[int, ...] = (64, 64, 128, 128, 256)
    kernel_size: int = 9
    stride: int = 4
    first_kernel: int = 128
    first_stride: int = 16

    _kind = "conv1d"
    _checks = {**NeuralInverter._checks, "channels": check_channels}

    def _encoder_config(self, X) -> dict[str, Any]:
        return {
            "in_channels": 1 if X.ndim == 2 else int(X.shape[1]),
            "channels": [int(c) for c in self.channels],
            "kernel_size": int(self.kernel_size),
            "stride": int(self.stride),
            "first_kernel": int(self.first_kernel),
            "first_stride": int(self.first_stride),
        }

    @staticmethod
    def _build_encoder(config: dict[str, Any]) -> tuple[nn.Module, int, None]:
        enc = conv1d_encoder(config["in_channels"], tuple(config["channels"]), config["kernel_size"], config["stride"], config["first_kernel"], config["first_stride"])
        return enc, config["channels"][-1], None
