"""After training: the latent's spread, and the sampling heads' noise scales calibrated for coverage@80 = 0.80."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ...metrics import coverage
from .loader import BlockLoader
from .net import InverterNet

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

log = logging.getLogger(__name__)

# as many draws as the benchmark's coverage@80, whose interval estimate depends on it
N_DRAWS = 64


def calibrate(net: InverterNet, val: BlockLoader, dev: torch.device, seed: int, n_rows: int, fixed: float | None, name: str) -> tuple[dict[str, float], dict[str, float]]:
    """Set ``net.z_std`` on up to ``n_rows`` validation rows; ``({head: scale}, {head: coverage@80})`` for every head ``net`` has.

    ``fixed``: use that scale for every head (coverages are then NaN).
    """
    zs, ys = [], []
    with torch.no_grad():
        for xb, yb in val.iterate(None):
            zs.append(net.latent(xb.to(dev)))
            ys.append(yb.numpy())
            if sum(len(y) for y in ys) >= n_rows:
                break
    z = torch.cat(zs)[:n_rows]
    y = np.concatenate(ys)[:n_rows]
    if len(z) > 1:
        net.z_std.copy_(z.std(dim=0).clamp_min(1e-6))
    heads = ["flow", "latent-noise"] if net.flow is not None else ["latent-noise"]
    if fixed is not None:
        return {h: float(fixed) for h in heads}, {h: float("nan") for h in heads}
    scales, coverages = {}, {}
    for head in heads:
        scales[head], coverages[head] = _calibrate_head(net, z, y, seed, head)
        log.info("%s: %s scale %.4g gives coverage@80 %.3f on %d validation rows", name, head, scales[head], coverages[head], len(y))
    return scales, coverages


def _calibrate_head(net: InverterNet, z: torch.Tensor, y: np.ndarray, seed: int, head: str) -> tuple[float, float]:
    """The scale of ``head``'s noise whose samples give coverage@80 closest to 0.80, and that coverage."""

    def cov(scale: float) -> float:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            s = net.sample(z, N_DRAWS, scale, gen, head).cpu().numpy()
        tried[scale] = coverage(y, s, level=0.8)
        return tried[scale]

    # coverage grows with the scale: bracket 0.8 by doubling or halving from 1, then bisect in log-space
    tried: dict[float, float] = {}
    a, c_a = 1.0, cov(1.0)
    step = 2.0 if c_a < 0.8 else 0.5
    for _ in range(6):
        b, c_b = a * step, cov(a * step)
        if (c_a - 0.8) * (c_b - 0.8) <= 0:
            lo, hi = min(a, b), max(a, b)
            for _ in range(4):
                mid = float(np.sqrt(lo * hi))
                if abs(tried[lo] - 0.8) < 0.01 or abs(tried[hi] - 0.8) < 0.01:
                    break
                lo, hi = (mid, hi) if cov(mid) < 0.8 else (lo, mid)
            break
        a, c_a = b, c_b
    return min(tried.items(), key=lambda kv: (abs(kv[1] - 0.8), kv[0]))
