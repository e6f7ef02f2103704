"""Gradient descent through a differentiable generator: an optional stage of the search.

When a generator is a torch program and says so (``render_torch``, see
``wavinv.generators.base.Generator``), the whole path from parameters to score is
differentiable: its render, wavinv's frontend (a torch module) and lsd_db. Each
start point then follows the gradient of its distance to the target with Adam
on the unit scale, one render and one backward pass per step, where a
black-box search needs tens of renders to find a direction in 100 dimensions.

Only the continuous parameters (linear and log scales) move; integer and
choice parameters keep their start values. A gradient that comes back NaN or
Inf (a generator's corner, a square root at zero) counts as zero, and a start
whose render is not finite stops there. Every point evaluated is returned with
its score, so the caller ranks them with the rest of the search.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np

from .errors import InputError, RenderError, TimeLimitError
from .params import ParamSpace

__all__ = ["differentiable", "descend", "natural_torch", "torch_render", "LEARNING_RATE"]

# Adam's step on the unit scale. A probe on torchsynth's Voice (10 targets, 32 starts each) went
# from 10.16 to 9.04 dB in 32 steps at 0.01; larger steps overshoot the envelopes' narrow minima.
LEARNING_RATE = 0.01
# Added under lsd_db's square roots, so a frame the candidate already matches has a finite gradient.
EPS = 1e-6


def differentiable(gen: Any) -> bool:
    """Whether ``gen`` offers ``render_torch`` (a differentiable render)."""
    return callable(getattr(gen, "render_torch", None))


def torch_render(gen: Any) -> Callable[[Any], Any]:
    """``gen.render_torch``, checked: a failure in it, a result of the wrong shape, or one that carries
    no gradient raises ``RenderError`` naming the generator (never the user's own exception)."""
    import torch

    def render(params):
        try:
            out = gen.render_torch(params)
        except Exception as e:  # a user's code may raise anything: report it as a render failure
            raise RenderError(f"{gen.name}: render_torch failed: {type(e).__name__}: {e}") from e
        expected = (len(params), int(gen.n_samples))
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise RenderError(f"{gen.name}: render_torch returned {got}, expected a tensor of shape {expected}")
        if not out.requires_grad:
            raise RenderError(f"{gen.name}: render_torch returned clips that carry no gradient (computed without autograd, or detached)")
        return out.float()

    return render


def natural_torch(space: ParamSpace, unit, fixed: np.ndarray):
    """Unit-scale tensor ``(B, P)`` -> natural units, differentiable in the linear and log columns;
    the other columns are ``fixed`` ``(B, P)`` natural values (held, no gradient)."""
    import torch

    cols = []
    for j, p in enumerate(space.params):
        u = unit[:, j]
        if p.scale == "linear":
            cols.append(p.low + u * (p.high - p.low))
        elif p.scale == "log":
            cols.append(p.low * torch.exp(u * math.log(p.high / p.low)))
        else:
            cols.append(torch.as_tensor(fixed[:, j], dtype=unit.dtype))
    return torch.stack(cols, dim=1)


def descend(
    space: ParamSpace,
    render_torch: Callable[[Any], Any],
    picture: Callable[[Any], Any],
    reference: np.ndarray,
    starts: np.ndarray,
    steps: int,
    *,
    lr: float = LEARNING_RATE,
    deadline: float | None = None,
    on_render: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Adam from each of ``starts`` (unit scale ``(S, P)``) for ``steps`` steps on lsd_db between
    ``picture(render_torch(params))`` and ``reference`` ``(F, T)``; every point evaluated ``(S * steps, P)``
    (unit scale, in the box) and its score ``(S * steps,)``, NaN where the render was not finite.

    ``picture`` maps clips ``(B, n_samples)`` to dB pictures ``(B, F, T)`` with torch ops.
    ``deadline`` (a ``time.perf_counter()`` value) raises ``TimeLimitError`` after a step that ends past it.
    """
    import torch

    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"gradient steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0.0 < lr <= 1.0):
        raise InputError(f"the gradient's learning rate must be in (0, 1], got {lr!r}")
    starts = np.clip(np.asarray(starts, dtype=np.float64), 0.0, 1.0)
    moving = torch.as_tensor([p.scale in ("linear", "log") for p in space.params])
    fixed = space.from_unit(starts)
    ref = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    x = torch.tensor(starts, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([x], lr=float(lr))
    alive = torch.ones(len(starts), dtype=torch.bool)
    tried_x, tried_f = [], []
    for _ in range(int(steps)):
        opt.zero_grad()
        waves = render_torch(natural_torch(space, x, fixed))
        if on_render is not None:
            on_render(len(starts))
        finite = torch.isfinite(waves).all(dim=1).detach()
        alive &= finite
        d = picture(torch.where(finite[:, None], waves, torch.zeros_like(waves))) - ref
        per = (d.square().mean(dim=-2) + EPS).sqrt().mean(dim=-1)  # lsd_db, with EPS under the root
        tried_x.append(x.detach().numpy().astype(np.float64).copy())
        tried_f.append(np.where(finite.numpy(), per.detach().numpy().astype(np.float64), np.nan))
        per[alive].sum().backward()
        with torch.no_grad():
            grad = torch.nan_to_num(x.grad, nan=0.0, posinf=0.0, neginf=0.0)
            grad[:, ~moving] = 0.0
            grad[~alive] = 0.0
            x.grad.copy_(grad)
        held = x.detach().clone()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
            x[~alive] = held[~alive]  # Adam's momentum would move a stopped start on
        if deadline is not None and time.perf_counter() > deadline:
            raise TimeLimitError(f"the gradient search passed its time limit after {len(tried_f)} of its {steps} steps")
    return np.concatenate(tried_x), np.concatenate(tried_f)
