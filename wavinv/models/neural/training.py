"""The training loop of the neural inverters, apart from the architecture: it sees a network, data and knobs.

AdamW with early stopping on the validation loss, a progress bar, a checkpoint
every epoch and resumption of an interrupted fit to the same weights.
Everything random derives from ``(seed, epoch)``, so a fit on CPU is
deterministic and a resumed fit equals an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ...errors import ModelError
from .loader import BlockLoader
from .net import InverterNet

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

log = logging.getLogger(__name__)

# what a checkpoint records besides the weights and the optimiser (its keys stay stable: checkpoints resume across versions)
_STATE_KEYS = ("epoch", "best_val", "best_epoch", "bad_epochs", "history", "best", "done")
Batches = Callable[[BlockLoader, np.random.Generator], Iterator[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class Knobs:
    """How to train, whatever the network: the estimator's training hyper-parameters."""

    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    tol: float
    flow_weight: float
    max_time: float | None
    checkpoint: str | None
    progress: bool
    seed: int
    name: str  # the method, in logs and on the progress bar


@dataclass
class _Run:
    """One call's bookkeeping: what it did and how long it took (``fit_stats_``)."""

    started: float = field(default_factory=time.perf_counter)
    stopped: str = "max_epochs"
    steps: int = 0
    step_s: float = 0.0
    data_wait_s: float = 0.0


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def train(net: InverterNet, train_data: BlockLoader, val_data: BlockLoader, knobs: Knobs, dev: torch.device, fingerprint: str, batches: Batches) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``net`` in place (its best epoch's weights at the end); the final state and the run's stats.

    ``batches(loader, rng)`` yields an epoch's training batches; ``fingerprint``
    names the fit, so a checkpoint of another fit is refused.
    """
    opt = torch.optim.AdamW(net.parameters(), lr=knobs.lr, weight_decay=knobs.weight_decay)
    ckpt = Path(knobs.checkpoint) if knobs.checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = _resume(ckpt, fingerprint, net, opt, dev, knobs.name)
    else:
        state = {"epoch": 0, "best_val": float("inf"), "best_epoch": -1, "bad_epochs": 0, "history": {"train_loss": [], "val_loss": []}, "best": None, "done": False}
        _measure_inputs(net, train_data, dev)
    run = _Run(stopped="done" if state["done"] else "max_epochs")
    from tqdm.auto import tqdm

    per_epoch = max(1, len(train_data) // knobs.batch_size)
    bar = tqdm(total=knobs.max_epochs * per_epoch, initial=min(state["epoch"], knobs.max_epochs) * per_epoch, unit="step", desc=knobs.name, disable=not knobs.progress, leave=False)
    try:
        while not state["done"] and state["epoch"] < knobs.max_epochs:
            train_loss = _epoch(net, opt, batches(train_data, np.random.default_rng([knobs.seed, state["epoch"]])), train_data, knobs, dev, state["epoch"], run, bar)
            if train_loss is None:
                run.stopped = "max_time"
                break
            val_loss = evaluate(net, val_data, dev, knobs.flow_weight)
            _end_epoch(state, net, train_loss, val_loss, knobs, run)
            bar.set_postfix(epoch=state["epoch"], loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
            if ckpt is not None:
                _atomic_torch_save({"fingerprint": fingerprint, "net": cpu_state(net), "opt": opt.state_dict(), **state}, ckpt)
    finally:
        bar.close()
    if state["best"] is not None:
        net.load_state_dict(state["best"])
    net.eval()
    train_s = time.perf_counter() - run.started
    stats = {
        "stopped": run.stopped,
        "steps": run.steps,
        "train_s": round(train_s, 3),
        "step_s": run.step_s / run.steps if run.steps else float("nan"),
        "data_wait_share": run.data_wait_s / run.step_s if run.step_s else float("nan"),
    }
    return state, stats


def _epoch(net: InverterNet, opt: torch.optim.Optimizer, batches, loader: BlockLoader, knobs: Knobs, dev: torch.device, epoch: int, run: _Run, bar) -> float | None:
    """One pass of optimiser steps; the mean training loss, or None when ``max_time`` ran out during it."""
    net.train()
    gen = torch.Generator(device=dev).manual_seed(knobs.seed * 100_003 + epoch)
    total, count, timed_out = 0.0, 0, False
    wait0, t_epoch = loader.wait_s, time.perf_counter()
    for xb, yb in batches:
        xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        loss = net.loss(xb, yb, knobs.flow_weight, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(yb)
        count += len(yb)
        run.steps += 1
        bar.update(1)
        if knobs.max_time is not None and time.perf_counter() - run.started > knobs.max_time:
            timed_out = True
            break
    run.step_s += time.perf_counter() - t_epoch
    run.data_wait_s += loader.wait_s - wait0
    return None if timed_out else total / max(count, 1)


def _end_epoch(state: dict[str, Any], net: InverterNet, train_loss: float, val_loss: float, knobs: Knobs, run: _Run) -> None:
    """Record the epoch's losses; keep the best weights; decide whether to stop."""
    epoch = state["epoch"]
    state["epoch"] = epoch + 1
    state["history"]["train_loss"].append(train_loss)
    state["history"]["val_loss"].append(val_loss)
    log.info("%s epoch %d: train %.5f val %.5f", knobs.name, epoch + 1, train_loss, val_loss)
    if val_loss < state["best_val"] - knobs.tol:
        state.update(best_val=val_loss, best_epoch=epoch, bad_epochs=0, best=cpu_state(net))
    else:
        state["bad_epochs"] += 1
    if state["bad_epochs"] >= knobs.patience:
        state["done"] = True
        run.stopped = "early"
    if state["epoch"] >= knobs.max_epochs:
        state["done"] = True


def evaluate(net: InverterNet, loader: BlockLoader, dev: torch.device, flow_weight: float) -> float:
    """The mean loss over ``loader``, without noise or gradients."""
    net.eval()
    total = count = 0.0
    with torch.no_grad():
        for xb, yb in loader.iterate(None):
            xb, yb = xb.to(dev), yb.to(dev)
            total += float(net.loss(xb, yb, flow_weight, None)) * len(yb)
            count += len(yb)
    return total / count


def _measure_inputs(net: InverterNet, loader: BlockLoader, dev: torch.device) -> None:
    """Global mean/std of the encoder's input over a few training batches."""
    s = s2 = n = 0.0
    with torch.no_grad():
        for i, (xb, _) in enumerate(loader.iterate(None)):
            f = net.features(xb.to(dev)).double()
            s, s2, n = s + float(f.sum()), s2 + float((f * f).sum()), n + f.numel()
            if i >= 3:
                break
    mean = s / n
    std = max(np.sqrt(max(s2 / n - mean * mean, 0.0)), 1e-8)
    net.in_shift.fill_(mean)
    net.in_scale.fill_(std)


def _resume(ckpt: Path, fingerprint: str, net: InverterNet, opt: torch.optim.Optimizer, dev: torch.device, name: str) -> dict[str, Any]:
    try:
        saved = torch.load(ckpt, map_location=dev, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"{ckpt}: cannot read the checkpoint ({type(e).__name__}: {e}); delete it to start over") from e
    if saved.get("fingerprint") != fingerprint:
        raise ModelError(f"{ckpt}: the checkpoint belongs to another fit (hyper-parameters or data differ); delete it or choose another path")
    net.load_state_dict(saved["net"])
    opt.load_state_dict(saved["opt"])
    log.info("%s: resuming from %s after epoch %d", name, ckpt, saved["epoch"])
    return {k: saved[k] for k in _STATE_KEYS}


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
