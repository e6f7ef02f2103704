"""Search through a learnt proxy of the generator: thousands of candidates moved for no render.

The estimator learns the forward direction too. Pictures are pooled and
projected to PCA features (``FeatureReducer``, as ``knn`` does); a small MLP,
the *proxy*, learns parameters -> features on the training set. To sample for
a target, it starts from the parameters of the target's nearest training
examples, moves each start by gradient steps on the proxy's distance to the
target's features (projected Adam in the unit box), and returns the points the
proxy finds closest, so the renders the inverter spends go to candidates that
already match the picture. Combes, Weinzierl and Obermayer, "Neural Proxies for
Sound Synthesizers" (2025) search the same way.

Distances are Euclidean in the unwhitened PCA space, which approximates the
distance between the pooled dB pictures (an lsd_db on a coarse grid).
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from ..device import torch_threads
from ..errors import InputError
from ..limits import int_arg, positive_int
from .base import Check, WavinvEstimator, as_generator, check_n_samples, fraction, n_threads, optional, positive_number
from .features import FeatureReducer, pool_rows

__all__ = ["ProxySearch", "ProxyScreen"]

# a point estimate needs no wide search: the nearest examples' best after the steps
PREDICT_STARTS = 16

log = logging.getLogger(__name__)


def _positive(name: str, value: Any) -> None:
    positive_int(name, value)


def _count(name: str, value: Any) -> None:
    int_arg(name, value, 0)


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be true or false, got {value!r}")


def _step_counts(name: str, value: Any) -> None:
    try:
        counts = [int_arg(name, v, 1) for v in value]
    except TypeError:
        counts = []
    if not counts or counts != sorted(set(counts)):
        raise InputError(f"{name} must be a non-empty increasing list of step counts >= 1, got {value!r}")


class Fourier(nn.Module):
    """Each unit parameter x beside sin and cos of pi 2^k x, k < ``n_freqs``: an MLP fed these learns
    the sharp parts of a generator's map (a pitch moving a harmonic across bins) far sooner."""

    def __init__(self, n_freqs: int):
        super().__init__()
        self.register_buffer("freqs", torch.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x[..., None] * self.freqs
        return torch.cat([x, torch.sin(a).flatten(-2), torch.cos(a).flatten(-2)], dim=-1)


class Ensemble(nn.Module):
    """The mean of several proxies trained from other starting weights: their errors partly cancel,
    so a search exploits fewer of them."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


class _Block(nn.Module):
    """A pre-norm residual block: LayerNorm, a 2x-wide SiLU layer, back to the width, added to its input."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


def _mlp(n_in: int, n_out: int, hidden: int, depth: int, n_freqs: int, residual: bool = False) -> nn.Sequential:
    """Fourier features, then ``depth`` SiLU layers of width ``hidden``, or with ``residual`` a linear layer to
    ``hidden``, ``depth`` pre-norm residual blocks and a normed read-out (they overfit the store less)."""
    width = n_in * (1 + 2 * n_freqs)
    if residual:
        return nn.Sequential(Fourier(n_freqs), nn.Linear(width, hidden), *[_Block(hidden) for _ in range(depth)],
                             nn.LayerNorm(hidden), nn.Linear(hidden, n_out))
    layers: list[nn.Module] = [Fourier(n_freqs)]
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class ProxySearch(WavinvEstimator):
    """Nearest training examples refined by gradient search through a learnt proxy of the generator.

    Parameters
    ----------
    n_components, pool_shape, pca_rows : the picture's features (see ``FeatureReducer``).
    hidden, depth : the proxy MLP's width and number of hidden layers (of residual blocks with ``residual``).
    residual : residual blocks with LayerNorm in place of plain layers (``_mlp``): on synth100 and
        torchsynth they err less on held-out rows than a plain MLP (benchmarks/README).
    n_proxies : MLPs trained from other initial weights and averaged (1: a single MLP).
    n_freqs : Fourier features of each parameter fed to the MLP (0: the parameters alone).
    max_epochs, batch_size, learning_rate, max_time : the proxy's training
        (Adam with a cosine schedule; ``max_time`` seconds stop it early).
    validation_fraction : rows held out to report the proxy's error (``proxy_error_``; 0: none, NaN).
    n_starts : nearest training examples a target's search starts from
        (at least ``n_samples`` are used).
    steps, step_size : projected Adam steps through the proxy and their size (unit scale);
        ``steps=0`` only ranks the starts by the proxy's distance.
    rounds, keep, correction_steps : the inverter's learnt rounds (``correct``): after the
        draws are rendered, ``rounds`` times the ``keep`` closest rendered candidates are
        moved through the proxy corrected by what their renders really look like, and the
        points after each of ``correction_steps`` are rendered too. The inverter spends
        ``rounds * keep * len(correction_steps)`` of its draws' renders on them.
    adapt_steps, adapt_rate : before each learnt round, a copy of the proxy takes this many
        full-batch Adam steps of this size on every candidate rendered for the target so far,
        so the round's steps follow the generator's slopes near the target (0: no adapting).
    batch_size : also the rows read from ``X`` at a time.
    n_threads : torch threads (None: every core).
    random_state : seeds the PCA, the training and the searches.
    progress : progress bars while reading ``X`` and training.
    """

    _kind: ClassVar[str] = "proxy"
    _checks: ClassVar[dict[str, Check]] = {
        name: _positive for name in ("n_components", "hidden", "depth", "n_proxies", "max_epochs", "batch_size", "n_starts")
    } | {"steps": _count, "n_freqs": _count, "rounds": _count, "keep": _positive, "correction_steps": _step_counts,
         "learning_rate": positive_number, "step_size": positive_number, "max_time": optional(positive_number),
         "validation_fraction": fraction, "adapt_steps": _count, "adapt_rate": positive_number, "n_threads": optional(_positive), "residual": _flag}

    def __init__(
        self,
        n_components: int = 128,
        pool_shape: tuple[int, int] = (64, 64),
        pca_rows: int | None = 8192,
        hidden: int = 512,
        depth: int = 3,
        residual: bool = True,
        n_proxies: int = 1,
        n_freqs: int = 2,
        max_epochs: int = 20,
        batch_size: int = 512,
        learning_rate: float = 2e-3,
        max_time: float | None = None,
        validation_fraction: float = 0.02,
        n_starts: int = 128,
        steps: int = 50,
        step_size: float = 0.02,
        rounds: int = 4,
        keep: int = 8,
        correction_steps: tuple[int, ...] = (10, 30, 60),
        adapt_steps: int = 50,
        adapt_rate: float = 5e-5,
        n_threads: int | None = None,
        random_state: int | None = 0,
        progress: bool = True,
    ):
        self.n_components = n_components
        self.pool_shape = pool_shape
        self.pca_rows = pca_rows
        self.hidden = hidden
        self.depth = depth
        self.residual = residual
        self.n_proxies = n_proxies
        self.n_freqs = n_freqs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_time = max_time
        self.validation_fraction = validation_fraction
        self.n_starts = n_starts
        self.steps = steps
        self.step_size = step_size
        self.rounds = rounds
        self.keep = keep
        self.correction_steps = correction_steps
        self.adapt_steps = adapt_steps
        self.adapt_rate = adapt_rate
        self.n_threads = n_threads
        self.random_state = random_state
        self.progress = progress

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("residual", False)  # a model file without the option holds a plain MLP
        state.setdefault("adapt_steps", 0)  # and learnt rounds that do not adapt
        state.setdefault("adapt_rate", 5e-5)
        super().__setstate__(state)

    # -- fit ---------------------------------------------------------------------
    def fit(self, X, y) -> "ProxySearch":
        X, y = self._check_fit_inputs(X, y)
        self.check_hyper_parameters()
        seed = int(as_generator(self.random_state).integers(2**31))
        self.reducer_ = FeatureReducer(
            n_components=self.n_components, pool_shape=self.pool_shape, whiten=False,
            pca_rows=self.pca_rows, batch_size=self.batch_size, random_state=self.random_state, progress=self.progress,
        )
        z = self.reducer_.fit_transform(X)
        self.z_scale_ = float(z.std()) or 1.0
        z = z / self.z_scale_
        self.index_ = NearestNeighbors(n_neighbors=min(int(self.n_starts), len(z))).fit(z)
        self.y_train_ = y
        with torch_threads(n_threads(self.n_threads)):
            self.proxy_, self.proxy_error_, self.fit_stats_ = self._train_all(y.astype(np.float32), z, seed)
        return self

    def _train_all(self, y: np.ndarray, z: np.ndarray, seed: int) -> tuple[nn.Module, float, dict[str, Any]]:
        """One MLP, or ``n_proxies`` of them averaged, each from its own seed; the held-out rows are the same for all."""
        rng = np.random.default_rng(seed)
        n = len(y)
        frac = float(self.validation_fraction)
        n_val = min(max(int(round(frac * n)), 1), n - 1) if frac > 0 and n > 2 else 0
        perm = rng.permutation(n)
        val, train = perm[:n_val], perm[n_val:]
        if int(self.n_proxies) == 1:
            return self._train(y, z, train, val, rng, seed)
        members, stats = [], []
        for member_seed in rng.integers(2**31, size=int(self.n_proxies)):
            net, _, member_stats = self._train(y, z, train, val, np.random.default_rng(member_seed), int(member_seed))
            members.append(net)
            stats.append(member_stats)
        net = Ensemble(members)
        error = self._held_out_error(net, y, z, val)
        fit_stats = {"epochs": stats[-1]["epochs"], "stopped": stats[-1]["stopped"], "fit_s": sum(s["fit_s"] for s in stats)}
        log.info("proxy ensemble of %d: held-out feature error %.3f", len(members), error)
        return net, error, fit_stats

    @staticmethod
    def _held_out_error(net: nn.Module, y: np.ndarray, z: np.ndarray, val: np.ndarray) -> float:
        if not len(val):
            return float("nan")
        with torch.no_grad():
            return float(((net(torch.from_numpy(y[val])) - torch.from_numpy(z[val])) ** 2).sum(1).sqrt().mean())

    def _train(self, y: np.ndarray, z: np.ndarray, train: np.ndarray, val: np.ndarray, rng: np.random.Generator,
               seed: int) -> tuple[nn.Module, float, dict[str, Any]]:
        torch.manual_seed(seed)
        net = _mlp(y.shape[1], z.shape[1], int(self.hidden), int(self.depth), int(self.n_freqs), bool(self.residual))
        opt = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate))
        bs = min(int(self.batch_size), len(train))
        steps_per_epoch = -(-len(train) // bs)
        total = int(self.max_epochs) * steps_per_epoch
        warm = max(total // 20, 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s / total, 1.0))))
        yt, zt = torch.from_numpy(y), torch.from_numpy(z)
        t0 = time.perf_counter()
        stopped = "max_epochs"
        bar = tqdm(total=total, desc="proxy", unit="step", disable=not self.progress, leave=False)
        epoch = 0
        for epoch in range(int(self.max_epochs)):
            order = torch.from_numpy(train[rng.permutation(len(train))])
            net.train()
            for a in range(0, len(order), bs):
                idx = order[a : a + bs]
                loss = ((net(yt[idx]) - zt[idx]) ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
            if self.max_time is not None and time.perf_counter() - t0 > float(self.max_time):
                stopped = "max_time"
                break
        bar.close()
        net.eval()
        error = self._held_out_error(net, y, z, val)
        for p in net.parameters():
            p.requires_grad_(False)
        stats = {"epochs": epoch + 1, "stopped": stopped, "fit_s": time.perf_counter() - t0}
        log.info("proxy: %d epochs in %.1f s, held-out feature error %.3f (features have unit std)", epoch + 1, stats["fit_s"], error)
        return net, error, stats

    # -- search ------------------------------------------------------------------
    def _features(self, X) -> np.ndarray:
        """The proxy's coordinates of ``X``: PCA features over their scale, the same bytes in any process."""
        return (self.reducer_.transform_exact(X) / self.z_scale_).astype(np.float32)

    def _searched(self, X, n_samples: int, random_state, n_starts: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(points (N, S, P), proxy distances (N, S))`` of every start after the search, closest first."""
        z = self._features(self._check_X(X))
        n_starts = max(int(self.n_starts) if n_starts is None else n_starts, n_samples)
        k = min(n_starts, len(self.y_train_))
        _, idx = self.index_.kneighbors(z, n_neighbors=k)
        starts = self.y_train_[idx]  # (N, k, P)
        if k < n_starts:  # a training set smaller than the starts asked for: jittered copies fill up
            rng = as_generator(random_state)
            extra = starts[:, rng.integers(0, k, n_starts - k)]
            starts = np.concatenate([starts, np.clip(extra + rng.normal(0, 0.05, extra.shape), 0, 1)], axis=1)
        target = torch.from_numpy(z.astype(np.float32))[:, None, :]
        with torch_threads(n_threads(self.n_threads)):
            (x,) = self._descend(torch.from_numpy(starts.astype(np.float32)), target, (int(self.steps),))
            d = self._distances(x, target)
        order = np.argsort(d, axis=1, kind="stable")
        return np.take_along_axis(x, order[:, :, None], axis=1), np.take_along_axis(d, order, axis=1)

    def _descend(self, x: torch.Tensor, target: torch.Tensor, snapshots: tuple[int, ...], net: nn.Module | None = None) -> list[np.ndarray]:
        """Projected Adam on every point at once (``x`` in [0, 1], ``target`` features broadcast against
        the output of ``net``, the proxy by default); the points after each count of steps in ``snapshots`` (increasing)."""
        net = self.proxy_ if net is None else net
        x = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=float(self.step_size))
        taken = []
        for step in range(max(snapshots) + 1):
            if step in snapshots:
                taken.append(x.detach().numpy().astype(np.float64))
            if step == max(snapshots):
                break
            loss = ((net(x) - target) ** 2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
        return taken

    def _distances(self, x: np.ndarray, z: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return ((self.proxy_(torch.from_numpy(x.astype(np.float32))) - z) ** 2).sum(-1).sqrt().numpy()

    # -- screening a search's proposals -------------------------------------------------
    def picture_features(self, pictures: np.ndarray) -> np.ndarray:
        """The proxy's coordinates of pictures of any size (pooled to the fit's grid): ``(B, C)``."""
        check_is_fitted(self)
        return self.pooled_features(pool_rows(np.asarray(pictures, dtype=np.float32), self.reducer_.grid_))

    def pooled_features(self, pooled: np.ndarray) -> np.ndarray:
        """The proxy's coordinates of pictures already pooled to the fit's grid ``(B, prod(grid))``."""
        return (self.reducer_.project_exact(pooled) / self.z_scale_).astype(np.float32)

    def forward(self, points: np.ndarray, net: nn.Module | None = None) -> np.ndarray:
        """The proxy's (or ``net``'s, one adapted to a target) prediction of the features of unit points ``(B, P)``: ``(B, C)``."""
        check_is_fitted(self)
        with torch_threads(n_threads(self.n_threads)), torch.no_grad():
            return (self.proxy_ if net is None else net)(torch.from_numpy(np.asarray(points, dtype=np.float32))).numpy()

    def screen(self, reference: np.ndarray, memo: dict | None = None) -> ProxyScreen:
        """A ``ProxyScreen`` for a search towards the picture ``reference`` ``(F, T)``; with the ``memo`` of
        the target's learnt rounds, through the proxy they adapted to it."""
        return ProxyScreen(self, np.asarray(reference, dtype=np.float32), memo)

    # -- learnt rounds ---------------------------------------------------------------
    def correction_renders(self) -> int:
        """Renders one inversion's learnt rounds take (``rounds * keep * len(correction_steps)``)."""
        return int(self.rounds) * int(self.keep) * len(self.correction_steps)

    def _adapted(self, points: torch.Tensor, real: torch.Tensor, memo: dict | None) -> nn.Module:
        """The proxy trained ``adapt_steps`` full-batch Adam steps more on one target's renders, so its
        slopes follow the generator where the search is, not only the store's average. A copy: the
        fitted proxy is left as it was. ``memo`` (one inversion's scratch dict) carries the copy from
        round to round, each round training it further on everything rendered so far."""
        memo = {} if memo is None else memo
        if "net" not in memo:
            net = copy.deepcopy(self.proxy_)
            memo["net"], memo["opt"] = net, torch.optim.Adam(net.parameters(), lr=float(self.adapt_rate))
        net, opt = memo["net"], memo["opt"]
        net.requires_grad_(True)
        for _ in range(int(self.adapt_steps)):
            loss = ((net(points) - real) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return net.requires_grad_(False)  # the rounds' steps then move the points alone

    def _seen_features(self, points: torch.Tensor, rendered, memo: dict | None) -> np.ndarray:
        """Features of every render seen for one target. The inverter only appends to what it has
        seen, so the rows whose points match the last round's are taken from ``memo``, not pooled again."""
        memo = {} if memo is None else memo
        known, z = memo.get("seen", (points[:0], np.zeros((0, self.reducer_.n_components_), np.float32)))
        n = len(known) if len(known) <= len(points) and torch.equal(points[: len(known)], known) else 0
        z = np.concatenate([z[:n], self._features(self._check_X(rendered[n:]))])
        memo["seen"] = (points, z)
        return z

    def correct(self, X, points: np.ndarray, rendered, seen: tuple[np.ndarray, Any] | None = None, memo: dict | None = None) -> np.ndarray:
        """New points for one target ``X`` (a batch of 1) from rendered candidates.

        ``points`` (M, P), unit-scaled as the inverter's draws are, were rendered as
        ``rendered`` (M, ...) rows of the input kind. The proxy's error at each point is measured against what its render
        really gives and held fixed while the point moves, so the steps follow
        the proxy's slopes from where the generator really is (a Gauss-Newton
        step with the proxy's Jacobian, repeated). With ``adapt_steps`` and
        ``seen`` (every point rendered for this target and its render, as
        ``points`` and ``rendered``), the proxy is first trained further on
        those (``_adapted``), from where the last round's training left it when
        the rounds share one ``memo`` dict (which also keeps the seen renders'
        features, ``_seen_features``). Returns the points after each of
        ``correction_steps``: ``(len(correction_steps) * M, P)``.
        """
        X = self._check_X(X)
        if len(X) != 1:
            raise InputError(f"correct takes one target at a time, got {len(X)}")
        z = torch.from_numpy(self._features(X))
        real = torch.from_numpy(self._features(self._check_X(rendered)))
        x = torch.from_numpy(np.clip(np.asarray(points, dtype=np.float32), 0.0, 1.0))
        with torch_threads(n_threads(self.n_threads)):
            net = self.proxy_
            if seen is not None and int(self.adapt_steps):
                seen_x = torch.from_numpy(np.clip(np.asarray(seen[0], dtype=np.float32), 0.0, 1.0))
                net = self._adapted(seen_x, torch.from_numpy(self._seen_features(seen_x, seen[1], memo)), memo)
            with torch.no_grad():
                target = z - (net(x) - real)  # the proxy's error at each point, moved to the target
            return np.concatenate(self._descend(x, target, tuple(int(c) for c in self.correction_steps), net))

    def predict(self, X) -> np.ndarray:
        """The point the proxy puts closest to each target, searched from its ``PREDICT_STARTS`` nearest examples."""
        return self._predictions(self._searched(X, 1, None, min(int(self.n_starts), PREDICT_STARTS))[0][:, 0])

    def sample(self, X, n_samples: int, random_state=None) -> np.ndarray:
        """The ``n_samples`` searched points the proxy puts closest to each target."""
        n_samples = check_n_samples(n_samples)
        return self._from_unit(self._searched(X, n_samples, random_state)[0][:, :n_samples])


class ProxyScreen:
    """A search's cheap model of its score: the proxy's distance to one target, corrected where renders were seen.

    ``observe(points, pictures)`` keeps the last rendered batch, pooled;
    ``screen(points, anchors)`` predicts each point's distance to the target
    with the proxy's error at its run's anchor (the run's best point: its
    prediction minus the features of its real picture) taken away, so the
    ranking follows the proxy's slopes from where the generator really is, as
    ``ProxySearch.correct`` does. An anchor's error is measured once, when it
    is first asked for: a run's new best is always in the batch just rendered.
    Pictures may be the search's coarse ones (every 8th frame): they pool to
    the proxy's grid, and the target is pooled the same way. Given the
    ``memo`` of the target's learnt rounds (``ProxySearch.correct``), it
    predicts through the proxy those rounds adapted to the target.
    """

    def __init__(self, estimator: ProxySearch, reference: np.ndarray, memo: dict | None = None):
        self.estimator = estimator
        self.net = (memo or {}).get("net")  # the proxy adapted to this target by its learnt rounds, if any
        self.target = estimator.picture_features(reference[None])[0]
        self.errors: dict[bytes, np.ndarray] = {}
        self.last: dict[bytes, np.ndarray] = {}

    def observe(self, points: np.ndarray, pictures: np.ndarray) -> None:
        pooled = pool_rows(pictures, self.estimator.reducer_.grid_)
        self.last = {p.tobytes(): row for p, row in zip(points, pooled) if np.isfinite(row).all()}

    def _error(self, anchors: np.ndarray) -> np.ndarray:
        new = [i for i, a in enumerate(anchors) if a.tobytes() not in self.errors and a.tobytes() in self.last]
        if new:
            pooled = np.stack([self.last[anchors[i].tobytes()] for i in new])
            error = self.estimator.forward(anchors[new], self.net) - self.estimator.pooled_features(pooled)
            self.errors.update((anchors[i].tobytes(), e) for i, e in zip(new, error))
        zero = np.zeros_like(self.target)  # an anchor never seen rendered: the proxy as it is
        return np.stack([self.errors.get(a.tobytes(), zero) for a in anchors])

    def __call__(self, points: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        error = self._error(anchors)  # (A, C)
        predicted = self.estimator.forward(points.reshape(-1, points.shape[-1]), self.net).reshape(*points.shape[:-1], -1)
        return np.sqrt((((predicted - error[:, None]) - self.target) ** 2).sum(-1))
