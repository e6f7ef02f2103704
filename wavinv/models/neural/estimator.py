"""``NeuralInverter``: the one estimator behind ``conv1d`` and ``spec-cnn``, which differ only in their encoder.

The hyper-parameters both share are declared here, once (a dataclass: the
first, ``head``, may be positional, the rest are keyword-only), with their
checks as data (``_checks``). A concrete class adds its encoder's
hyper-parameters and plugs the encoder in through two hooks:
``_encoder_config(X)`` (the encoder's sizes, measured on ``X``, as plain JSON)
and ``_build_encoder(config) -> (encoder, its output size, frontend or None)``.
``InverterNet`` puts the heads on top; ``training.train`` fits it with the
training knobs, which it receives apart from the architecture.

A flow-trained network also has the point head, so it can sample both ways:
``sampler="latent-noise"`` (settable after the fit) switches, and both scales
are calibrated at the end of the fit (``noise_scales_``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...device import resolve_device, torch_threads
from ...errors import InputError
from ...lazy import iter_batches
from ...limits import int_arg, positive_int
from ..base import Check, WavinvEstimator, as_generator, check_n_samples, check_targets, one_of, optional
from .calibration import calibrate
from .loader import BlockLoader, blocks_of, split_blocks
from .net import HEAD_KEYS, HEADS, InverterNet
from .training import Knobs, cpu_state, train

__all__ = ["NeuralInverter"]


def check_channels(name: str, value: Any) -> None:
    """A non-empty list of layer widths >= 1."""
    try:
        widths = [int(c) for c in value]
    except (TypeError, ValueError):
        widths = []
    if not widths or min(widths) < 1:
        raise InputError(f"{name} must be a non-empty list of ints >= 1, got {value!r}")


def _open_unit(name: str, value: Any) -> None:
    if not 0.0 < float(value) < 1.0:
        raise InputError(f"{name} must be in (0, 1), got {value!r}")


def _scale(name: str, value: Any) -> None:
    if not (value == "auto" or (isinstance(value, (int, float)) and value >= 0)):
        raise InputError(f"{name} must be 'auto' or a number >= 0, got {value!r}")


def _seconds(name: str, value: Any) -> None:
    """Seconds of training, 0 included (stop before the first step, resumably)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0.0 <= float(value) < np.inf:
        raise InputError(f"{name} must be a number of seconds >= 0, got {value!r}")


def _seed(name: str, value: Any) -> None:
    int_arg(f"{name} (the fit is seeded)", value, 0)


@dataclass(eq=False, repr=False)
class NeuralInverter(WavinvEstimator):
    """Base of the torch estimators: fit / predict / sample on unit-scale params.

    Parameters (shared by every neural inverter)
    ----------
    head : "flow" or "latent-noise"
        How ``sample`` draws: a conditional spline flow on the latent, or noise
        added to the latent and decoded (see ``wavinv.models.neural.net``).
    latent_dim, hidden : sizes of the latent vector and of the MLPs.
    flow_transforms, flow_hidden : the flow head's coupling transforms and hidden width.
    noise_scale : "auto" (calibrated on the validation split for coverage@80 = 0.8) or a number.
    sampler : None (sample with the trained head) or "latent-noise": a flow-trained
        model can also sample by perturbing its latent and decoding with the point
        head (its scale calibrated too), so one fit benchmarks both heads.
    n_calibration : validation rows used to calibrate ``noise_scale_``.
    flow_weight, lr, weight_decay, batch_size, max_epochs, patience, tol :
        AdamW training (loss: MSE + ``flow_weight`` x the flow's NLL) with early stopping on the validation loss.
    validation_fraction : share of ``X``'s blocks held out when ``fit`` gets no ``X_val``.
    block_size, shuffle_blocks : rows per contiguous read; blocks per shuffle buffer.
    max_time : seconds; stop (resumably) after this much training.
    checkpoint : path of a checkpoint written every epoch; a fit finding it resumes.
    device : "auto" (CUDA when present), "cpu", "cuda", ...
    n_threads : torch CPU threads while fitting/predicting (``None``: torch's default); restored after.
    random_state : int seed; on CPU the same seed gives the same weights.
    progress : show a progress bar.
    """

    head: str = "flow"
    _: KW_ONLY
    # the heads on the encoder
    latent_dim: int = 64
    hidden: int = 256
    flow_transforms: int = 3
    flow_hidden: int = 128
    # sampling
    noise_scale: str | float = "auto"
    sampler: str | None = None
    n_calibration: int = 64
    # training knobs
    flow_weight: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 50
    patience: int = 5
    tol: float = 1e-4
    validation_fraction: float = 0.1
    block_size: int = 256
    shuffle_blocks: int = 4
    max_time: float | None = None
    checkpoint: str | None = None
    # where it runs
    device: str = "auto"
    n_threads: int | None = None
    random_state: int = 0
    progress: bool = True

    _kind: ClassVar[str] = "neural"
    _checks: ClassVar[dict[str, Check]] = {
        "head": one_of(HEADS),
        "sampler": optional(one_of(HEADS)),
        **dict.fromkeys(("batch_size", "max_epochs", "patience", "latent_dim", "hidden", "block_size", "shuffle_blocks", "n_calibration"), positive_int),
        "validation_fraction": _open_unit,
        "noise_scale": _scale,
        "n_threads": optional(positive_int),
        "max_time": optional(_seconds),
        "random_state": _seed,
    }
    # hyper-parameters that do not change the result of a fit (so a checkpoint stays valid)
    _RESUMABLE: ClassVar[tuple[str, ...]] = ("max_epochs", "max_time", "checkpoint", "progress", "device", "n_threads", "sampler")

    # -- contract ---------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None) -> "NeuralInverter":
        """Train on ``X`` (N, ...) and unit-scale ``y`` (N, P).

        Early stopping watches ``(X_val, y_val)`` when given, else a held-out
        ``validation_fraction`` of ``X``'s blocks. With ``checkpoint`` set, an
        interrupted fit (Ctrl-C, ``max_time``) resumes from its last epoch.
        """
        self.check_hyper_parameters()
        with torch_threads(self.n_threads):
            return self._fit(X, y, X_val, y_val)

    def _fit(self, X, y, X_val, y_val) -> "NeuralInverter":
        X, y, Xv, yv, train_blocks, val_blocks = self._fit_data(X, y, X_val, y_val)
        seed, dev = int(self.random_state), resolve_device(self.device)
        pin = dev.type == "cuda"
        train_data = BlockLoader(X, y, train_blocks, self.batch_size, self.shuffle_blocks, pin=pin)
        val_data = BlockLoader(Xv, yv, val_blocks, self.batch_size, 1, pin=pin)
        self.net_config_ = self._net_config(X, y.shape[1])
        net = self._build(self.net_config_, seed).to(dev)
        state, stats = train(net, train_data, val_data, self._knobs(), dev, self._fingerprint(X, y, Xv, yv), self.epoch_batches)
        self.net_, self.device_ = net, str(dev)
        self.history_ = copy.deepcopy(state["history"])
        self.best_epoch_ = int(state["best_epoch"]) + 1
        self.n_epochs_ = int(state["epoch"])
        t0 = time.perf_counter()
        fixed = None if self.noise_scale == "auto" else float(self.noise_scale)
        self.noise_scales_, coverages = calibrate(net, val_data, dev, seed, self.n_calibration, fixed, self._kind)
        self.noise_scale_, self.calibration_coverage_ = self.noise_scales_[self.head], coverages[self.head]
        self.fit_stats_ = {**stats, "calibrate_s": round(time.perf_counter() - t0, 3)}
        return self

    def _fit_data(self, X, y, X_val, y_val):
        """Checked ``X, y``, the validation data, and the row blocks of each."""
        X, y = self._check_fit_inputs(X, y)
        y = y.astype(np.float32)
        if X_val is not None:
            X_val = self._validate_X(X_val, reset=False)
            y_val = self._to_unit(check_targets(y_val, len(X_val)).reshape(len(X_val), -1)).astype(np.float32)
        if X_val is None:
            X_val, y_val = X, y
            train_blocks, val_blocks = split_blocks(len(y), self.block_size, self.validation_fraction, int(self.random_state))
        elif X_val.shape[1:] != X.shape[1:] or y_val.shape[1] != y.shape[1]:
            raise InputError(f"{self._kind}: X_val, y_val have shapes {X_val.shape}, {y_val.shape}; X, y have {X.shape}, {y.shape}")
        else:
            train_blocks, val_blocks = blocks_of(np.arange(len(y)), self.block_size), blocks_of(np.arange(len(y_val)), self.block_size)
        if not train_blocks or not val_blocks:
            raise InputError(f"{self._kind}: need at least 2 training rows and 1 validation row, got {len(y)} rows")
        return X, y, X_val, y_val, train_blocks, val_blocks

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
        return self._predictions(np.concatenate(out).astype(np.float64) if out else np.empty((0, self.n_params_)))

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
        return self._from_unit(np.concatenate(out).astype(np.float64) if out else np.empty((0, int(n_samples), self.n_params_)))

    # -- pickling: weights as CPU tensors, the network rebuilt from net_config_ -------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        net = state.pop("net_", None)
        if net is not None:
            state["_net_state"] = cpu_state(net)
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
    def _knobs(self) -> Knobs:
        return Knobs(
            lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size, max_epochs=self.max_epochs,
            patience=self.patience, tol=self.tol, flow_weight=self.flow_weight, max_time=self.max_time,
            checkpoint=self.checkpoint, progress=self.progress, seed=int(self.random_state), name=self._kind,
        )  # fmt: skip

    def _sampling_head(self) -> str:
        head = self.head if self.sampler is None else self.sampler
        if head not in self.noise_scales_:
            raise InputError(f"{self._kind}: sampler {self.sampler!r} needs a model trained with that head (this one has {', '.join(self.noise_scales_)})")
        return head

    def _net_config(self, X, n_params: int) -> dict[str, Any]:
        """The encoder's sizes, the number of parameters and the heads' sizes: all a saved model needs to rebuild its network."""
        return {**self._encoder_config(X), "n_params": int(n_params), **{k: getattr(self, k) for k in HEAD_KEYS}}

    def _build(self, config: dict[str, Any], seed: int) -> InverterNet:
        # seeded initialisation without touching the caller's global torch RNG
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder, dim, frontend = self._build_encoder(config)
            return InverterNet(encoder, dim, config["n_params"], frontend=frontend, **{k: config[k] for k in HEAD_KEYS})

    def epoch_batches(self, loader: BlockLoader, rng: np.random.Generator):
        """The training batches of one epoch, ``(X, y)`` tensors, in ``rng``'s order.

        Called at the start of every epoch: a subclass that overrides it can
        watch or interrupt a fit between epochs, as the tests interrupt one
        (a ``KeyboardInterrupt`` here is a Ctrl-C after the last checkpoint).
        """
        return loader.iterate(rng)

    def _fingerprint(self, X, y: np.ndarray, Xv, yv: np.ndarray) -> str:
        params = {k: v for k, v in self.get_params().items() if k not in self._RESUMABLE}
        h = hashlib.sha256(json.dumps({"kind": self._kind, "params": params, "X": list(X.shape), "Xv": list(Xv.shape)}, sort_keys=True, default=str).encode())
        h.update(np.ascontiguousarray(y).tobytes())
        h.update(np.ascontiguousarray(yv).tobytes())
        return h.hexdigest()[:16]

    def _ready(self, X) -> tuple[Any, InverterNet, torch.device]:
        X = self._check_X(X)
        dev = resolve_device(self.device)
        if str(dev) != self.device_:
            self.net_.to(dev)
            self.device_ = str(dev)
        self.net_.eval()
        return X, self.net_, dev

    # the encoder, plugged in by the concrete class
    def _encoder_config(self, X) -> dict[str, Any]:
        """The encoder's sizes for inputs like ``X``, as plain JSON (checked; ``InputError`` if they cannot work)."""
        raise NotImplementedError

    @staticmethod
    def _build_encoder(config: dict[str, Any]) -> tuple[nn.Module, int, nn.Module | None]:
        """``(encoder, its output size, frontend or None)`` from a ``net_config_``."""
        raise NotImplementedError
