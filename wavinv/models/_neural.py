"""Shared torch pieces of the neural inverters (``conv1d``, ``spec-cnn``).

One network shape for both: ``encoder -> latent z -> point head`` (sigmoid,
unit-scale parameters, trained with MSE) plus a sampling head:

* ``"latent-noise"``: perturb ``z`` with Gaussian noise and decode with the
  point head. The noise scale (in units of each latent dimension's spread) is
  calibrated on the validation split so that coverage@80 is closest to 0.80.
* ``"flow"``: a conditional neural spline flow (``zuko.flows.NSF``, coupling
  layers so sampling takes two passes) models ``p(params | z)`` on scaled
  logits of the unit parameters, so samples stay in (0, 1), may have several
  modes (parameters that trade places) and spread over parameters the sound
  does not constrain. Its base temperature is calibrated the same way.

A flow-trained network also has the point head, so it can sample both ways:
``sampler="latent-noise"`` (settable after the fit) switches, and both scales
are calibrated at the end of the fit (``noise_scales_``).

Training (``NeuralInverter.fit``) reads ``X`` (numpy or ``LazyArray``) in
contiguous blocks, shuffles within a bounded buffer and prefetches in a
background thread (``BlockLoader``), stops early on a validation split, shows
a progress bar, checkpoints every epoch and resumes an interrupted fit to the
same weights. Everything random derives from ``(random_state, epoch)``, so a
fit on CPU is deterministic and a resumed fit equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..device import resolve_device, torch_threads
from ..errors import InputError, ModelError
from ..lazy import iter_batches
from ..metrics import coverage
from .base import WavinvEstimator, as_generator, check_n_samples

__all__ = ["NeuralInverter", "InverterNet", "BlockLoader", "HEADS"]

log = logging.getLogger(__name__)

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


class BlockLoader:
    """Batches of rows of ``X`` (numpy or lazy) with their ``y``, read ahead in a thread.

    Rows are read as contiguous blocks of ``block_size`` (fast for chunked
    stores); for training, the block order is shuffled per epoch and rows are
    shuffled inside a buffer of ``buffer_blocks`` blocks. Memory is bounded by
    ``(buffer_blocks * block_size + prefetch * batch_size)`` rows, whatever the
    size of ``X``. ``wait_s`` accumulates the time the consumer waited for data.
    """

    def __init__(self, X, y: np.ndarray, blocks: list[np.ndarray], batch_size: int, buffer_blocks: int = 4, prefetch: int = 4, pin: bool = False):
        self.X, self.y, self.blocks = X, y, blocks
        self.batch_size, self.buffer_blocks, self.prefetch, self.pin = int(batch_size), int(buffer_blocks), int(prefetch), pin
        self.wait_s = 0.0

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def _plan(self, rng: np.random.Generator | None) -> Iterator[list[np.ndarray]]:
        """Groups of blocks to read together, and the row order inside each group."""
        order = rng.permutation(len(self.blocks)) if rng is not None else np.arange(len(self.blocks))
        for s in range(0, len(order), self.buffer_blocks):
            yield [self.blocks[i] for i in order[s : s + self.buffer_blocks]]

    def _produce(self, rng, out: queue.Queue, stop: threading.Event) -> None:
        try:
            pending_x: list[np.ndarray] = []
            pending_y: list[np.ndarray] = []
            for group in self._plan(rng):
                xs = [self._read(rows) for rows in group]
                ys = [self.y[rows] for rows in group]
                x, y = np.concatenate(pending_x + xs), np.concatenate(pending_y + ys)
                if rng is not None:
                    perm = rng.permutation(len(x))
                    x, y = x[perm], y[perm]
                n_full = len(x) // self.batch_size * self.batch_size
                for s in range(0, n_full, self.batch_size):
                    if stop.is_set():
                        return
                    out.put(self._tensors(x[s : s + self.batch_size], y[s : s + self.batch_size]))
                pending_x, pending_y = [x[n_full:]], [y[n_full:]]
            rest = pending_x[0] if pending_x else np.empty(0)
            # a last batch of one row would break batch normalisation in training
            if len(rest) > (1 if rng is not None else 0):
                out.put(self._tensors(rest, pending_y[0]))
        except BaseException as e:  # re-raised in the consumer
            out.put(e)
        finally:
            out.put(None)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.X[rows], dtype=np.float32)

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        tx, ty = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        return (tx.pin_memory(), ty.pin_memory()) if self.pin else (tx, ty)

    def iterate(self, rng: np.random.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass; ``rng`` shuffles (training), ``None`` keeps row order (evaluation)."""
        out: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(rng, out, stop), daemon=True)
        worker.start()
        try:
            while True:
                t0 = time.perf_counter()
                item = out.get()
                self.wait_s += time.perf_counter() - t0
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    out.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()


def _blocks_of(indices: np.ndarray, block_size: int) -> list[np.ndarray]:
    return [indices[s : s + block_size] for s in range(0, len(indices), block_size)]


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class NeuralInverter(WavinvEstimator):
    """Base of the torch estimators: fit / predict / sample on unit-scale params.

    Subclasses set ``_kind`` and implement ``_net_config(X, n_params)`` and
    ``_make_net(config) -> InverterNet`` (``config`` is ``net_config_``, a plain
    dict, so a pickled model rebuilds its network without the training data).
    """

    _kind = "neural"
    # hyper-parameters that do not change the result of a fit (so a checkpoint stays valid)
    _RESUMABLE = ("max_epochs", "max_time", "checkpoint", "progress", "device", "n_threads", "sampler")

    # -- contract ---------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None) -> "NeuralInverter":
        """Train on ``X`` (N, ...) and unit-scale ``y`` (N, P).

        Early stopping watches ``(X_val, y_val)`` when given, else a held-out
        ``validation_fraction`` of ``X``'s blocks. With ``checkpoint`` set, an
        interrupted fit (Ctrl-C, ``max_time``) resumes from its last epoch.
        """
        self._validate_hparams()
        with torch_threads(self.n_threads):
            return self._fit(X, y, X_val, y_val)

    def _fit(self, X, y, X_val, y_val) -> "NeuralInverter":
        if X_val is not None:
            X_val, y_val = self._check_fit_inputs(X_val, y_val)
            y_val = y_val.astype(np.float32)
        X, y = self._check_fit_inputs(X, y)
        y = y.astype(np.float32)
        if X_val is not None and (X_val.shape[1:] != X.shape[1:] or y_val.shape[1] != y.shape[1]):
            raise InputError(f"{self._kind}: X_val, y_val have shapes {X_val.shape}, {y_val.shape}; X, y have {X.shape}, {y.shape}")
        seed = int(self.random_state)
        dev = resolve_device(self.device)
        if X_val is not None:
            train_blocks, val_blocks = _blocks_of(np.arange(len(y)), self.block_size), _blocks_of(np.arange(len(y_val)), self.block_size)
            Xv, yv = X_val, y_val
        else:
            train_blocks, val_blocks = self._split_blocks(len(y), seed)
            Xv, yv = X, y
        if not train_blocks or not val_blocks:
            raise InputError(f"{self._kind}: need at least 2 training rows and 1 validation row, got {len(y)} rows")
        pin = dev.type == "cuda"
        train = BlockLoader(X, y, train_blocks, self.batch_size, self.shuffle_blocks, pin=pin)
        val = BlockLoader(Xv, yv, val_blocks, self.batch_size, 1, pin=pin)

        self.net_config_ = self._net_config(X, y.shape[1])
        net = self._build(self.net_config_, seed).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        state = {"epoch": 0, "best_val": float("inf"), "best_epoch": -1, "bad_epochs": 0, "history": {"train_loss": [], "val_loss": []}, "best": None, "done": False}
        ckpt = Path(self.checkpoint) if self.checkpoint else None
        fingerprint = self._fingerprint(X, y, Xv, yv)
        if ckpt is not None and ckpt.exists():
            state = self._resume(ckpt, fingerprint, net, opt, dev)
        else:
            self._measure_inputs(net, train, dev)

        t_start = time.perf_counter()
        steps_per_epoch = max(1, len(train) // self.batch_size)
        step_s = data_wait_s = 0.0
        n_steps = 0
        stopped = "done" if state["done"] else "max_epochs"
        from tqdm.auto import tqdm

        bar = tqdm(total=self.max_epochs * steps_per_epoch, initial=min(state["epoch"], self.max_epochs) * steps_per_epoch, unit="step", desc=self._kind, disable=not self.progress, leave=False)
        try:
            while not state["done"] and state["epoch"] < self.max_epochs:
                epoch = state["epoch"]
                net.train()
                gen = torch.Generator(device=dev).manual_seed(seed * 100_003 + epoch)
                total, count, timed_out = 0.0, 0, False
                wait0 = train.wait_s
                t_epoch = time.perf_counter()
                for xb, yb in self._epoch_batches(train, np.random.default_rng([seed, epoch])):
                    xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                    loss = net.loss(xb, yb, self.flow_weight, gen)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(yb)
                    count += len(yb)
                    n_steps += 1
                    bar.update(1)
                    if self.max_time is not None and time.perf_counter() - t_start > self.max_time:
                        timed_out = True
                        break
                step_s += time.perf_counter() - t_epoch
                data_wait_s += train.wait_s - wait0
                if timed_out:
                    stopped = "max_time"
                    break
                val_loss = self._evaluate(net, val, dev)
                state["epoch"] = epoch + 1
                state["history"]["train_loss"].append(total / max(count, 1))
                state["history"]["val_loss"].append(val_loss)
                bar.set_postfix(epoch=epoch + 1, loss=f"{total / max(count, 1):.4f}", val=f"{val_loss:.4f}")
                log.info("%s epoch %d: train %.5f val %.5f", self._kind, epoch + 1, total / max(count, 1), val_loss)
                if val_loss < state["best_val"] - self.tol:
                    state.update(best_val=val_loss, best_epoch=epoch, bad_epochs=0, best=_cpu_state(net))
                else:
                    state["bad_epochs"] += 1
                if state["bad_epochs"] >= self.patience:
                    state["done"] = True
                    stopped = "early"
                if state["epoch"] >= self.max_epochs:
                    state["done"] = True
                if ckpt is not None:
                    _atomic_torch_save({"fingerprint": fingerprint, "net": _cpu_state(net), "opt": opt.state_dict(), **state}, ckpt)
        finally:
            bar.close()

        if state["best"] is not None:
            net.load_state_dict(state["best"])
        net.eval()
        self.net_ = net
        self.device_ = str(dev)
        self.history_ = copy.deepcopy(state["history"])
        self.best_epoch_ = int(state["best_epoch"]) + 1
        self.n_epochs_ = int(state["epoch"])
        train_s = time.perf_counter() - t_start
        self._calibrate(val, dev, seed)
        self.fit_stats_ = {
            "stopped": stopped,
            "steps": n_steps,
            "train_s": round(train_s, 3),
            "calibrate_s": round(time.perf_counter() - t_start - train_s, 3),
            "step_s": step_s / n_steps if n_steps else float("nan"),
            "data_wait_share": data_wait_s / step_s if step_s else float("nan"),
        }
        return self

    def predict(self, X) -> np.ndarray:
        """Point estimate ``(N, P)`` in [0, 1] (the point head)."""
        with torch_threads(self.n_threads):
            return self._predict(X)

    def _predict(self, X) -> np.ndarray:
        X, net, dev = self._ready(X)
        out = []
        with torch.no_grad():
            for _, xb in iter_batches(X, self.batch_size):
                z = net.latent(torch.from_numpy(np.asarray(xb, dtype=np.float32)).to(dev))
                out.append(net.decode(z).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.empty((0, self.n_params_))

    def sample(self, X, n_samples: int, random_state=None, noise_scale: float | None = None) -> np.ndarray:
        """``n_samples`` draws per row, ``(N, n_samples, P)`` in [0, 1].

        ``noise_scale`` overrides the calibrated scale of the sampling head (``noise_scales_``: the latent
        noise in units of the latent spread, or the flow's base temperature).
        """
        with torch_threads(self.n_threads):
            return self._sample(X, n_samples, random_state, noise_scale)

    def _sample(self, X, n_samples: int, random_state, noise_scale: float | None) -> np.ndarray:
        X, net, dev = self._ready(X)
        n_samples = check_n_samples(n_samples)
        head = self._sampling_head()
        scale = self.noise_scales_[head] if noise_scale is None else float(noise_scale)
        if not np.isfinite(scale) or scale < 0:
            raise InputError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
        seed = int(as_generator(random_state).integers(2**62))
        gen = torch.Generator().manual_seed(seed)
        # bounded memory: about 8192 draws at a time
        rows = max(1, 8192 // int(n_samples))
        out = []
        with torch.no_grad():
            for _, xb in iter_batches(X, min(rows, self.batch_size)):
                z = net.latent(torch.from_numpy(np.asarray(xb, dtype=np.float32)).to(dev))
                out.append(net.sample(z, int(n_samples), scale, gen, head).clamp(0, 1).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.empty((0, int(n_samples), self.n_params_))

    # -- pickling: weights as CPU tensors, the network rebuilt from net_config_ -------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        net = state.pop("net_", None)
        if net is not None:
            state["_net_state"] = _cpu_state(net)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("_net_state", None)
        state.setdefault("sampler", None)  # models saved before there was a choice
        if "noise_scale_" in state:
            state.setdefault("noise_scales_", {state["head"]: state["noise_scale_"]})
        self.__dict__.update(state)
        if weights is not None:
            net = self._build(self.net_config_, 0)
            net.load_state_dict(weights)
            self.net_ = net.eval()
            self.device_ = "cpu"

    # -- pieces ------------------------------------------------------------------
    def _sampling_head(self) -> str:
        head = self.head if self.sampler is None else self.sampler
        if head not in self.noise_scales_:
            raise InputError(f"{self._kind}: sampler {self.sampler!r} needs a model trained with that head (this one has {', '.join(self.noise_scales_)})")
        return head

    def _validate_hparams(self) -> None:
        if self.head not in HEADS:
            raise InputError(f"{self._kind}: head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.sampler is not None and self.sampler not in HEADS:
            raise InputError(f"{self._kind}: sampler must be None or one of {', '.join(HEADS)}, got {self.sampler!r}")
        for name in ("batch_size", "max_epochs", "patience", "latent_dim", "hidden", "block_size", "shuffle_blocks", "n_calibration"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"{self._kind}: {name} must be an int >= 1, got {v!r}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise InputError(f"{self._kind}: validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if not (self.noise_scale == "auto" or (isinstance(self.noise_scale, (int, float)) and self.noise_scale >= 0)):
            raise InputError(f"{self._kind}: noise_scale must be 'auto' or a number >= 0, got {self.noise_scale!r}")
        if self.n_threads is not None and (not isinstance(self.n_threads, (int, np.integer)) or self.n_threads < 1):
            raise InputError(f"{self._kind}: n_threads must be None or an int >= 1, got {self.n_threads!r}")
        if not isinstance(self.random_state, (int, np.integer)):
            raise InputError(f"{self._kind}: random_state must be an int (the fit is seeded), got {self.random_state!r}")

    def _split_blocks(self, n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Whole blocks held out for validation, chosen by the seed (contiguous reads stay contiguous)."""
        size = min(self.block_size, max(1, int(np.ceil(n * self.validation_fraction))))
        blocks = _blocks_of(np.arange(n), size)
        n_val = max(1, int(round(len(blocks) * self.validation_fraction)))
        if len(blocks) < 2:
            return [], []
        is_val = np.zeros(len(blocks), dtype=bool)
        is_val[np.random.default_rng([seed, 7]).choice(len(blocks), min(n_val, len(blocks) - 1), replace=False)] = True
        return [b for b, v in zip(blocks, is_val) if not v], [b for b, v in zip(blocks, is_val) if v]

    def _build(self, config: dict[str, Any], seed: int) -> InverterNet:
        # seeded initialisation without touching the caller's global torch RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._make_net(config)

    def _epoch_batches(self, loader: BlockLoader, rng: np.random.Generator):
        """The training batches of one epoch (a hook tests use to interrupt a fit)."""
        return loader.iterate(rng)

    def _measure_inputs(self, net: InverterNet, loader: BlockLoader, dev: torch.device) -> None:
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

    def _evaluate(self, net: InverterNet, loader: BlockLoader, dev: torch.device) -> float:
        net.eval()
        total = count = 0.0
        with torch.no_grad():
            for xb, yb in loader.iterate(None):
                xb, yb = xb.to(dev), yb.to(dev)
                total += float(net.loss(xb, yb, self.flow_weight, None)) * len(yb)
                count += len(yb)
        return total / count

    def _calibrate(self, val: BlockLoader, dev: torch.device, seed: int) -> None:
        """Latent spread and the noise scale whose samples give coverage@80 closest to 0.80."""
        net = self.net_
        zs, ys = [], []
        with torch.no_grad():
            for xb, yb in val.iterate(None):
                zs.append(net.latent(xb.to(dev)))
                ys.append(yb.numpy())
                if sum(len(y) for y in ys) >= self.n_calibration:
                    break
        z = torch.cat(zs)[: self.n_calibration]
        y = np.concatenate(ys)[: self.n_calibration]
        if len(z) > 1:
            net.z_std.copy_(z.std(dim=0).clamp_min(1e-6))
        heads = ["flow", "latent-noise"] if net.flow is not None else ["latent-noise"]
        if self.noise_scale != "auto":
            self.noise_scales_ = {h: float(self.noise_scale) for h in heads}
            self.noise_scale_ = float(self.noise_scale)
            self.calibration_coverage_ = float("nan")
            return
        self.noise_scales_, coverages = {}, {}
        for head in heads:
            self.noise_scales_[head], coverages[head] = self._calibrate_head(net, z, y, seed, head)
            log.info("%s: %s scale %.4g gives coverage@80 %.3f on %d validation rows", self._kind, head, self.noise_scales_[head], coverages[head], len(y))
        self.noise_scale_, self.calibration_coverage_ = self.noise_scales_[self.head], coverages[self.head]

    @staticmethod
    def _calibrate_head(net: InverterNet, z: torch.Tensor, y: np.ndarray, seed: int, head: str) -> tuple[float, float]:
        """The scale of ``head``'s noise whose samples give coverage@80 closest to 0.80, and that coverage."""
        n_draws = 64  # as many draws as the benchmark's coverage@80, whose interval estimate depends on it

        def cov(scale: float) -> float:
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                s = net.sample(z, n_draws, scale, gen, head).cpu().numpy()
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

    def _fingerprint(self, X, y: np.ndarray, Xv, yv: np.ndarray) -> str:
        params = {k: v for k, v in self.get_params().items() if k not in self._RESUMABLE}
        h = hashlib.sha256(json.dumps({"kind": self._kind, "params": params, "X": list(X.shape), "Xv": list(Xv.shape)}, sort_keys=True, default=str).encode())
        h.update(np.ascontiguousarray(y).tobytes())
        h.update(np.ascontiguousarray(yv).tobytes())
        return h.hexdigest()[:16]

    def _resume(self, ckpt: Path, fingerprint: str, net: InverterNet, opt: torch.optim.Optimizer, dev: torch.device) -> dict[str, Any]:
        try:
            saved = torch.load(ckpt, map_location=dev, weights_only=True)
        except Exception as e:  # a truncated or foreign file
            raise ModelError(f"{ckpt}: cannot read the checkpoint ({type(e).__name__}: {e}); delete it to start over") from e
        if saved.get("fingerprint") != fingerprint:
            raise ModelError(f"{ckpt}: the checkpoint belongs to another fit (hyper-parameters or data differ); delete it or choose another path")
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        log.info("%s: resuming from %s after epoch %d", self._kind, ckpt, saved["epoch"])
        return {k: saved[k] for k in ("epoch", "best_val", "best_epoch", "bad_epochs", "history", "best", "done")}

    def _ready(self, X) -> tuple[Any, InverterNet, torch.device]:
        X = self._check_X(X)
        dev = resolve_device(self.device)
        if str(dev) != self.device_:
            self.net_.to(dev)
            self.device_ = str(dev)
        self.net_.eval()
        return X, self.net_, dev

    # subclasses
    def _net_config(self, X, n_params: int) -> dict[str, Any]:
        raise NotImplementedError

    def _make_net(self, config: dict[str, Any]) -> InverterNet:
        raise NotImplementedError

    def _head_kwargs(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "hidden": self.hidden, "head": self.head, "flow_transforms": self.flow_transforms, "flow_hidden": self.flow_hidden}
