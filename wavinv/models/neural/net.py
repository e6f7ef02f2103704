"""The network both neural inverters train: ``frontend? -> standardise -> encoder -> latent z`` with two heads.

The point head (sigmoid, unit-scale parameters) is trained with MSE. With
``head="flow"`` a conditional neural spline flow (``zuko.flows.NSF``, coupling
layers so sampling takes two passes) also models ``p(params | z)`` on scaled
logits of the unit parameters, so samples stay in (0, 1), may have several
modes and spread over parameters the sound does not constrain. The encoder is
any module mapping the (standardised) input to a vector: the estimators plug
theirs in.
"""

from __future__ import annotations

import torch
from torch import nn

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

HEADS = ("flow", "latent-noise")
# unit params -> flow space: logit / LOGIT_SCALE has ~unit variance for uniform
# params (a logistic's std is pi/sqrt(3)) and stays inside the spline's [-5, 5]
LOGIT_SCALE = 1.8
UNIT_EPS = 1e-3
# Gaussian noise added to flow-space targets while training, so discrete
# (int/choice) parameters do not collapse the density into spikes
FLOW_DEQUANT = 0.05
# draws inverted through the flow at once (~100 MB of temporaries for 100 parameters)
FLOW_CHUNK = 1024
# the hyper-parameters that shape the heads (``InverterNet``'s keywords), recorded in a model's ``net_config_``
HEAD_KEYS = ("latent_dim", "hidden", "head", "flow_transforms", "flow_hidden")


def _to_flow(y: torch.Tensor) -> torch.Tensor:
    return torch.logit(y.clamp(UNIT_EPS, 1 - UNIT_EPS)) / LOGIT_SCALE


def _from_flow(u: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(u * LOGIT_SCALE)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class InverterNet(nn.Module):
    """``frontend? -> standardise -> encoder -> MLP -> latent z`` with a point head and an optional flow."""

    def __init__(
        self,
        encoder: nn.Module,
        enc_dim: int,
        n_params: int,
        latent_dim: int,
        hidden: int,
        head: str,
        flow_transforms: int = 3,
        flow_hidden: int = 128,
        frontend: nn.Module | None = None,
    ):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.to_latent = _mlp([enc_dim, hidden, latent_dim])
        self.point = _mlp([latent_dim, hidden, n_params])
        self.flow = None
        if head == "flow":
            import zuko

            self.flow = zuko.flows.NSF(
                n_params,
                context=latent_dim,
                transforms=flow_transforms,
                hidden_features=(flow_hidden, flow_hidden),
                passes=2 if n_params > 1 else None,
            )
        # input standardisation and latent spread: measured on data, saved with the weights
        self.register_buffer("in_shift", torch.zeros(()))
        self.register_buffer("in_scale", torch.ones(()))
        self.register_buffer("z_std", torch.ones(latent_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Raw batch -> the encoder's input (spectrogram through the frontend when ``x`` is waveforms)."""
        if self.frontend is not None and x.ndim == 2:
            x = self.frontend(x)
        return x

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        x = (self.features(x) - self.in_shift) / self.in_scale
        return self.to_latent(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.point(z))

    def loss(self, x: torch.Tensor, y: torch.Tensor, flow_weight: float, gen: torch.Generator | None) -> torch.Tensor:
        """MSE of the point head on unit params (+ the flow's NLL per parameter)."""
        z = self.latent(x)
        loss = torch.mean((self.decode(z) - y) ** 2)
        if self.flow is not None:
            u = _to_flow(y)
            if gen is not None:
                u = u + FLOW_DEQUANT * torch.randn(u.shape, generator=gen, device=u.device)
            nll = -self.flow(z).log_prob(u).mean() / y.shape[1]
            loss = loss + flow_weight * nll
        return loss

    def sample(self, z: torch.Tensor, n: int, scale: float, gen: torch.Generator, head: str | None = None) -> torch.Tensor:
        """``(B, n, P)`` draws for latents ``z`` (B, L); ``scale`` is the calibrated noise/temperature.

        ``head="latent-noise"`` perturbs the latent even when there is a flow.
        """
        B, L = z.shape
        zz = z[:, None, :].expand(B, n, L).reshape(B * n, L)
        if self.flow is None or head == "latent-noise":
            eps = torch.randn(zz.shape, generator=gen, device=gen.device).to(z.device)
            out = self.decode(zz + scale * self.z_std * eps)
        else:
            P = self.point[-1].out_features
            eps = torch.randn((B * n, P), generator=gen, device=gen.device).to(z.device)
            # the spline inverse keeps large temporaries: invert a bounded number of draws at a time
            out = torch.cat([_from_flow(self.flow(zc).transform.inv(scale * ec)) for zc, ec in zip(zz.split(FLOW_CHUNK), eps.split(FLOW_CHUNK))])
        return out.reshape(B, n, -1)
