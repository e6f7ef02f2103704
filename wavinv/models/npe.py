"""A peer, not ours: sbi's neural posterior estimation (NPE) on pooled spectrograms.

What a user would reach for instead of wavinv's own samplers: ``sbi``'s NPE with a
conditional normalizing flow (MAF) over the unit-scaled parameters, conditioned on
a CNN embedding of the spectrogram (a 1D CNN for waveform rows). Rows are
average-pooled first (``pool_shape``, as the classical estimators do) so the flow
trains in minutes on a CPU. ``sbi`` is an optional extra: ``pip install 'wavinv[peers]'``.

Samples come from the flow directly; a draw outside the unit box (the flow's
leakage) is clipped to it rather than rejected, so a target never waits on
rejection sampling.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from ..limits import positive_int
from .base import Check, WavinvEstimator, as_generator, check_n_samples, n_threads, optional, positive_number
from .features import pool_all, pooled_grid

__all__ = ["NPESampler"]

log = logging.getLogger(__name__)


def _sbi():
    try:
        import sbi.inference  # noqa: F401
    except ImportError:
        raise InputError("the sbi-npe peer needs the sbi package: pip install 'wavinv[peers]'") from None
    import sbi

    return sbi


class _LogTracker:
    """sbi's training metrics go to the debug log, not to a TensorBoard folder in the working directory."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        log.debug("sbi %s = %s (step %s)", name, value, step)

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        for name, value in metrics.items():
            self.log_metric(name, value, step)

    def log_params(self, params: dict) -> None:
        log.debug("sbi params %s", params)

    def add_figure(self, name: str, figure, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


class _OutOfTime(Exception):
    """Raised between sbi's epochs once ``max_time`` has run out."""


class _Until:
    """A DataLoader's batches until ``deadline`` (``time.perf_counter``); sbi reads ``len`` and ``batch_size`` too."""

    def __init__(self, loader, deadline: float):
        self.loader, self.deadline = loader, deadline
        self.batch_size = loader.batch_size

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if time.perf_counter() > self.deadline:
                return
            yield batch


def _train_within(inference, max_time: float | None, **train_kwargs):
    """``inference.train(**train_kwargs)``, stopped mid-epoch once ``max_time`` seconds have passed.

    sbi's trainer has no time limit, so its epoch step is wrapped: past the deadline
    the running epoch ends early (it is still validated and kept if best), and the
    next one is not started. Returns the network with the best validation loss's
    weights and whether the deadline stopped it.
    """
    if max_time is None:
        return inference.train(**train_kwargs), False
    deadline = time.perf_counter() + float(max_time)
    epoch_step = inference._train_epoch

    def timed_epoch(train_loader, *args, **kwargs):
        if time.perf_counter() > deadline:
            raise _OutOfTime
        return epoch_step(_Until(train_loader, deadline), *args, **kwargs)

    inference._train_epoch = timed_epoch
    try:
        return inference.train(**train_kwargs), False
    except _OutOfTime:
        net = inference._neural_net
        net.load_state_dict(inference._best_model_state_dict)  # sbi's own choice: the best validation epoch
        net.zero_grad(set_to_none=True)
        inference._summary["epochs_trained"].append(inference.epoch)
        inference._summary["best_validation_loss"].append(inference._best_val_loss)
        return net, True
    finally:
        del inference._train_epoch


def _pool_pair(name: str, value: Any) -> None:
    try:
        pair = len(value) == 2
    except TypeError:
        pair = False
    if not pair:
        raise InputError(f"{name} must be (F, T), got {value!r}")


class NPESampler(WavinvEstimator):
    """sbi NPE: a MAF flow over unit parameters conditioned on an embedding of pooled rows.

    Parameters
    ----------
    pool_shape : pooled size of a spectrogram ``(F, T)`` (waveform rows are pooled to ``pool_shape[0] * pool_shape[1]`` samples).
    hidden_features, num_transforms : the MAF's width and depth.
    embedding_features : size of the CNN embedding (1D for waveform rows) the flow is conditioned on.
    max_epochs, stop_after_epochs, batch_size, learning_rate, validation_fraction : sbi's training knobs.
    max_time : seconds of training at most (None: no limit); past it the running epoch
        ends early and the best epoch's weights are kept, so two inputs can be given the
        same wall-clock budget.
    n_threads : torch threads while training and sampling (None: every core).
    random_state : seeds torch for the initialisation and the training order.
    progress : progress bars while reading ``X`` and training.
    """

    _kind: ClassVar[str] = "sbi-npe"
    _checks: ClassVar[dict[str, Check]] = {
        name: positive_int for name in ("hidden_features", "num_transforms", "embedding_features", "max_epochs", "stop_after_epochs", "batch_size")
    } | {"max_time": optional(positive_number), "pool_shape": _pool_pair}

    def __init__(
        self,
        pool_shape: tuple[int, int] = (64, 64),
        hidden_features: int = 64,
        num_transforms: int = 4,
        embedding_features: int = 64,
        max_epochs: int = 100,
        stop_after_epochs: int = 10,
        batch_size: int = 256,
        learning_rate: float = 5e-4,
        validation_fraction: float = 0.1,
        max_time: float | None = None,
        n_threads: int | None = None,
        random_state: int | None = 0,
        progress: bool = True,
    ):
        self.pool_shape = pool_shape
        self.hidden_features = hidden_features
        self.num_transforms = num_transforms
        self.embedding_features = embedding_features
        self.max_epochs = max_epochs
        self.stop_after_epochs = stop_after_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.max_time = max_time
        self.n_threads = n_threads
        self.random_state = random_state
        self.progress = progress

    def _pool(self, X) -> np.ndarray:
        return pool_all(X, self.pooled_shape_, progress=self.progress).reshape(len(X), *self.pooled_shape_)

    def _embedding(self):
        from sbi.neural_nets.embedding_nets import CNNEmbedding, FCEmbedding

        if len(self.pooled_shape_) == 2:
            side = min(self.pooled_shape_)  # two conv + pool layers need at least 16 x 16 left after pooling
            return CNNEmbedding(
                input_shape=self.pooled_shape_,
                num_conv_layers=2 if side >= 16 else 1,
                out_channels_per_layer=[8, 16] if side >= 16 else [8],
                kernel_size=min(5, side),
                num_linear_units=128,
                output_dim=int(self.embedding_features),
            )
        n = self.pooled_shape_[0]
        if n < 16:  # too short to convolve and pool
            return FCEmbedding(input_dim=n, output_dim=int(self.embedding_features), num_hiddens=128)
        # a waveform: each layer convolves, then pools by 4, so the last of up to four sees hundreds of samples
        layers, left = 0, n
        while left >= 16 and layers < 4:
            layers, left = layers + 1, left // 4
        return CNNEmbedding(
            input_shape=self.pooled_shape_,
            num_conv_layers=layers,
            out_channels_per_layer=[8, 16, 32, 32][:layers],
            kernel_size=min(9, n),
            pool_kernel_size=4,
            num_linear_units=128,
            output_dim=int(self.embedding_features),
        )

    def fit(self, X, y) -> "NPESampler":
        X, y = self._check_fit_inputs(X, y)
        sbi = _sbi()
        import torch
        from sbi.inference import NPE
        from sbi.neural_nets import posterior_nn
        from sbi.utils import BoxUniform

        self.check_hyper_parameters()
        # waveform rows pool to as many samples as a pooled spectrogram has cells
        self.pooled_shape_ = pooled_grid(self.input_shape_, self.pool_shape, int(np.prod(self.pool_shape)))
        x = self._pool(X)
        threads = torch.get_num_threads()
        torch.set_num_threads(n_threads(self.n_threads))
        try:
            torch.manual_seed(int(as_generator(self.random_state).integers(2**31)))
            prior = BoxUniform(torch.zeros(y.shape[1]), torch.ones(y.shape[1]))
            builder = posterior_nn(
                model="maf",
                hidden_features=int(self.hidden_features),
                num_transforms=int(self.num_transforms),
                embedding_net=self._embedding(),
                z_score_x="structured",
            )
            inference = NPE(prior=prior, density_estimator=builder, show_progress_bars=self.progress, tracker=_LogTracker())
            inference.append_simulations(torch.as_tensor(y, dtype=torch.float32), torch.as_tensor(x))
            with warnings.catch_warnings(record=True) as caught:  # sbi warns when max_epochs stops it: a log line here
                warnings.simplefilter("always")
                started = time.perf_counter()
                self.estimator_, out_of_time = _train_within(
                    inference,
                    self.max_time,
                    training_batch_size=int(self.batch_size),
                    learning_rate=float(self.learning_rate),
                    validation_fraction=float(self.validation_fraction),
                    stop_after_epochs=int(self.stop_after_epochs),
                    max_num_epochs=int(self.max_epochs),
                )
            for w in caught:
                log.info("sbi: %s", w.message)
            self.estimator_.eval()
            self.epochs_ = int(inference.summary["epochs_trained"][-1])
            self.best_validation_loss_ = float(inference.summary["best_validation_loss"][-1])
            self.fit_stats_ = {
                "epochs": self.epochs_,
                "stopped": "max_time" if out_of_time else "sbi",
                "fit_s": round(time.perf_counter() - started, 3),
            }
        finally:
            torch.set_num_threads(threads)
        self.sbi_version_ = sbi.__version__
        return self

    def sample(self, X, n_samples: int, random_state=None) -> np.ndarray:
        return self._from_unit(self._unit_draws(X, n_samples, random_state))

    def predict(self, X) -> np.ndarray:
        """The mean of 64 posterior draws per row, every row drawn with the same seed
        (so a row's estimate does not depend on the rows predicted with it)."""
        return self._predictions(self._unit_draws(X, 64, 0, per_row=True).mean(axis=1))

    def _unit_draws(self, X, n_samples: int, random_state, per_row: bool = False) -> np.ndarray:
        """``(N, n_samples, P)`` unit-scaled draws: one seeded stream for all rows, or the same seed for each row."""
        X = self._check_X(X)
        n_samples = check_n_samples(n_samples)
        import torch

        x = torch.as_tensor(self._pool(X))
        torch_seed = int(as_generator(random_state).integers(2**31))

        def draw(condition):
            torch.manual_seed(torch_seed)
            # the flow's own sampler: (n_samples, rows, P); no rejection, the box is enforced by clipping
            return self.estimator_.sample(torch.Size((n_samples,)), condition=condition)

        with torch.random.fork_rng(), torch.no_grad():
            draws = torch.cat([draw(x[i : i + 1]) for i in range(len(x))], dim=1) if per_row else draw(x)
        return np.clip(draws.permute(1, 0, 2).cpu().numpy().astype(np.float64), 0.0, 1.0)
