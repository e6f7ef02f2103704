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

from typing import Any

from torch import nn

from ..errors import InputError
from ._neural import InverterNet, NeuralInverter
from .base import configure

__all__ = ["Conv1dInverter", "conv1d_encoder", "build", "TINY"]

# a network that fits toy data in a fraction of a second (the estimator contract test uses it)
TINY: dict = dict(
    channels=(4, 8), first_kernel=8, first_stride=4, hidden=16, latent_dim=4, flow_hidden=16, flow_transforms=1,
    max_epochs=2, batch_size=16, block_size=16, n_threads=1, progress=False,
)  # fmt: skip


def build(**overrides) -> "Conv1dInverter":
    """The ``conv1d`` method: ``Conv1dInverter`` with ``overrides`` (e.g. ``head="latent-noise"``)."""
    return configure(Conv1dInverter, {}, overrides)


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


class Conv1dInverter(NeuralInverter):
    """Invert from waveforms ``(N, T)`` (or spectrograms ``(N, F, T)``) with a strided 1D CNN.

    Parameters
    ----------
    head : "flow" or "latent-noise"
        How ``sample`` draws: a conditional spline flow on the latent, or noise
        added to the latent and decoded (see ``wavinv.models._neural``).
    channels, kernel_size, stride, first_kernel, first_stride :
        The encoder: one strided conv layer per entry of ``channels``.
    latent_dim, hidden : sizes of the latent vector and of the MLPs.
    flow_transforms, flow_hidden, flow_weight :
        The flow head: coupling transforms, hidden width, weight of its NLL in the loss.
    noise_scale : "auto" (calibrated on the validation split for coverage@80 = 0.8) or a number.
    sampler : None (sample with the trained head) or "latent-noise": a flow-trained
        model can also sample by perturbing its latent and decoding with the point
        head (its scale calibrated too), so one fit benchmarks both heads.
    lr, weight_decay, batch_size, max_epochs, patience, tol :
        AdamW training with early stopping on the validation loss.
    validation_fraction : share of ``X``'s blocks held out when ``fit`` gets no ``X_val``.
    block_size, shuffle_blocks : rows per contiguous read; blocks per shuffle buffer.
    n_calibration : validation rows used to calibrate ``noise_scale_``.
    max_time : seconds; stop (resumably) after this much training.
    checkpoint : path of a checkpoint written every epoch; a fit finding it resumes.
    device : "auto" (CUDA when present), "cpu", "cuda", ...
    n_threads : torch CPU threads while fitting/predicting (``None``: torch's default); restored after.
    random_state : int seed; on CPU the same seed gives the same weights.
    progress : show a progress bar.
    """

    _kind = "conv1d"

    def __init__(
        self,
        head: str = "flow",
        channels: tuple[int, ...] = (64, 64, 128, 128, 256),
        kernel_size: int = 9,
        stride: int = 4,
        first_kernel: int = 128,
        first_stride: int = 16,
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
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.first_kernel = first_kernel
        self.first_stride = first_stride
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
        channels = tuple(int(c) for c in self.channels)
        if not channels or min(channels) < 1:
            raise InputError(f"conv1d: channels must be a non-empty list of ints >= 1, got {self.channels!r}")
        return {
            "in_channels": 1 if X.ndim == 2 else int(X.shape[1]),
            "channels": list(channels),
            "kernel_size": int(self.kernel_size),
            "stride": int(self.stride),
            "first_kernel": int(self.first_kernel),
            "first_stride": int(self.first_stride),
            "n_params": int(n_params),
            **self._head_kwargs(),
        }

    def _make_net(self, config: dict[str, Any]) -> InverterNet:
        enc = conv1d_encoder(config["in_channels"], tuple(config["channels"]), config["kernel_size"], config["stride"], config["first_kernel"], config["first_stride"])
        head = {k: config[k] for k in ("latent_dim", "hidden", "head", "flow_transforms", "flow_hidden")}
        return InverterNet(enc, config["channels"][-1], config["n_params"], **head)
