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

from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ._neural import InverterNet, NeuralInverter
from .base import configure

__all__ = ["SpecCNNInverter", "spec_cnn_encoder", "build", "TINY"]

# a network that fits toy data in a fraction of a second (the estimator contract test uses it)
TINY: dict = dict(
    channels=(4,), pool=1, frontend={"n_freq": 8, "n_frames": 8}, hidden=16, latent_dim=4, flow_hidden=16,
    flow_transforms=1, max_epochs=2, batch_size=16, block_size=16, n_threads=1, progress=False,
)  # fmt: skip


def build(**overrides) -> "SpecCNNInverter":
    """The ``spec-cnn`` method: ``SpecCNNInverter`` with ``overrides`` (e.g. ``head="latent-noise"``)."""
    return configure(SpecCNNInverter, {}, overrides)


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


class SpecCNNInverter(NeuralInverter):
    """Invert from waveforms ``(N, T)`` through an on-device spectrogram frontend, or from spectrograms ``(N, F, T)``.

    Parameters
    ----------
    frontend : dict or None
        ``wavinv.frontend.Spectrogram`` settings used when ``X`` holds waveforms
        (``None``: the frontend's defaults with ``n_samples`` from ``X``).
    channels, pool : the 2D CNN: one stride-2 conv layer per entry of ``channels``,
        after average-pooling the spectrogram by ``pool``.
    Other parameters: as ``Conv1dInverter`` (head, sampler, latent, flow, training,
    checkpoint, device, n_threads, seed, progress).
    """

    _kind = "spec-cnn"

    def __init__(
        self,
        head: str = "flow",
        frontend: dict | None = None,
        channels: tuple[int, ...] = (16, 32, 64, 128, 128),
        pool: int = 4,
        latent_dim: int = 64,
        hidden: int = 256,
        flow_transforms: int = 3,
        flow_hidden: int = 128,
        flow_weight: float = 1.0,
        noise_scale: str | float = "auto",
        sampler: str | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        max_epochs: int = 50,
        patience: int = 5,
        tol: float = 1e-4,
        validation_fraction: float = 0.1,
        block_size: int = 256,
        shuffle_blocks: int = 4,
        n_calibration: int = 64,
        max_time: float | None = None,
        checkpoint: str | None = None,
        device: str = "auto",
        n_threads: int | None = None,
        random_state: int = 0,
        progress: bool = True,
    ):
        self.head = head
        self.frontend = frontend
        self.channels = channels
        self.pool = pool
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.flow_transforms = flow_transforms
        self.flow_hidden = flow_hidden
        self.flow_weight = flow_weight
        self.noise_scale = noise_scale
        self.sampler = sampler
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.block_size = block_size
        self.shuffle_blocks = shuffle_blocks
        self.n_calibration = n_calibration
        self.max_time = max_time
        self.checkpoint = checkpoint
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.progress = progress

    def _net_config(self, X, n_params: int) -> dict[str, Any]:
        from ..frontend import Spectrogram

        channels = tuple(int(c) for c in self.channels)
        if not channels or min(channels) < 1:
            raise InputError(f"spec-cnn: channels must be a non-empty list of ints >= 1, got {self.channels!r}")
        if not isinstance(self.pool, (int,)) or self.pool < 1:
            raise InputError(f"spec-cnn: pool must be an int >= 1, got {self.pool!r}")
        frontend = None
        if X.ndim == 2:
            cfg = dict(self.frontend or {})
            cfg.setdefault("n_samples", int(X.shape[1]))
            frontend = Spectrogram.from_config(cfg).config()
            if frontend["n_samples"] != X.shape[1]:
                raise InputError(f"spec-cnn: the frontend takes {frontend['n_samples']}-sample clips, X has {X.shape[1]}")
            n_freq, n_frames = frontend["n_freq"], frontend["n_frames"]
        else:
            n_freq, n_frames = int(X.shape[1]), int(X.shape[2])
        if min(n_freq, n_frames) // self.pool < 2 ** len(channels):
            raise InputError(f"spec-cnn: a {n_freq}x{n_frames} spectrogram is too small for pool={self.pool} and {len(channels)} stride-2 layers")
        return {"frontend": frontend, "n_freq": n_freq, "n_frames": n_frames, "channels": list(channels), "pool": int(self.pool), "n_params": int(n_params), **self._head_kwargs()}

    def _make_net(self, config: dict[str, Any]) -> InverterNet:
        from ..frontend import Spectrogram

        enc, dim = spec_cnn_encoder(config["n_freq"], config["n_frames"], tuple(config["channels"]), config["pool"])
        frontend = Spectrogram.from_config(config["frontend"]) if config["frontend"] is not None else None
        head = {k: config[k] for k in ("latent_dim", "hidden", "head", "flow_transforms", "flow_hidden")}
        return InverterNet(enc, dim, config["n_params"], frontend=frontend, **head)
