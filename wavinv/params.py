"""Parameter spaces: natural units at the edges, unit scale [0, 1] inside models.

A ``Param`` is a linear, log or integer range, or a list of categorical choices.
A ``ParamSpace`` is an ordered list of them: it converts whole batches between
natural units and unit scale, samples them reproducibly, and serialises to JSON.

Sampling is *addressable*: the values of sample ``i`` depend only on
``(seed, i)``, so any slice of a dataset can be rendered alone (by another
worker, after an interruption) and reproduce the same values.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ParamSpaceError

__all__ = ["Param", "ParamSpace", "SAMPLINGS"]

SCALES = ("linear", "log", "int", "choice")
SAMPLINGS = ("uniform", "sobol")


@dataclass(frozen=True)
class Param:
    """One named parameter.

    ``Param("cutoff", 100.0, 8000.0, scale="log")`` is a log range;
    ``Param("voices", 1, 8, scale="int")`` an integer range;
    ``Param("wave", choices=[0, 1, 2])`` a categorical choice (numeric values).
    Integer and choice parameters map to unit scale by bin centres, so
    natural -> unit -> natural is exact for every kind.
    """

    name: str
    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    choices: tuple[float, ...] | None = None
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParamSpaceError(f"parameter name must be a non-empty string, got {self.name!r}")
        if self.choices is not None:
            choices = tuple(float(c) for c in self.choices)
            if len(choices) < 1 or not all(math.isfinite(c) for c in choices):
                raise ParamSpaceError(f"{self.name}: choices must be a non-empty list of finite numbers")
            if len(set(choices)) != len(choices):
                raise ParamSpaceError(f"{self.name}: choices must be distinct")
            object.__setattr__(self, "choices", choices)
            object.__setattr__(self, "scale", "choice")
            object.__setattr__(self, "low", min(choices))
            object.__setattr__(self, "high", max(choices))
            return
        if self.scale not in SCALES[:3]:
            raise ParamSpaceError(f"{self.name}: scale must be one of linear, log, int (or give choices), got {self.scale!r}")
        if self.low is None or self.high is None:
            raise ParamSpaceError(f"{self.name}: a range parameter needs low and high")
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ParamSpaceError(f"{self.name}: need finite low < high, got {low}, {high}")
        if self.scale == "log" and low <= 0:
            raise ParamSpaceError(f"{self.name}: a log range needs low > 0, got {low}")
        if self.scale == "int":
            if low != round(low) or high != round(high):
                raise ParamSpaceError(f"{self.name}: an int range needs integer bounds, got {low}, {high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def span(self) -> str:
        """The values it takes, in words: ``"100 to 8000 Hz (log)"``, ``"one of 0, 1, 2"``."""
        if self.scale == "choice":
            return "one of " + ", ".join(f"{c:g}" for c in self.choices)
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.low:g} to {self.high:g}{unit}" + {"log": " (log)", "int": " (int)"}.get(self.scale, "")

    @property
    def n_levels(self) -> int | None:
        """Number of distinct values for int and choice parameters, else None."""
        if self.scale == "choice":
            return len(self.choices)
        if self.scale == "int":
            return int(self.high - self.low) + 1
        return None

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.scale == "linear":
            return (x - self.low) / (self.high - self.low)
        if self.scale == "log":
            return np.log(x / self.low) / math.log(self.high / self.low)
        n = self.n_levels
        if self.scale == "int":
            idx = np.rint(x) - self.low
        else:
            # nearest choice, so slightly perturbed values still map to a level
            choices = np.asarray(self.choices)
            idx = np.abs(x[..., None] - choices).argmin(axis=-1).astype(np.float64)
        return (idx + 0.5) / n

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.scale == "linear":
            return self.low + u * (self.high - self.low)
        if self.scale == "log":
            return self.low * np.exp(u * math.log(self.high / self.low))
        n = self.n_levels
        idx = np.minimum(np.floor(u * n), n - 1)
        if self.scale == "int":
            return self.low + idx
        return np.asarray(self.choices)[idx.astype(np.int64)]

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "scale": self.scale}
        if self.scale == "choice":
            d["choices"] = list(self.choices)
        else:
            d["low"], d["high"] = self.low, self.high
        if self.unit:
            d["unit"] = self.unit
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Param":
        if not isinstance(d, dict) or "name" not in d:
            raise ParamSpaceError(f"not a parameter description: {d!r}")
        if d.get("scale") == "choice" or "choices" in d:
            return cls(d["name"], choices=d["choices"], unit=d.get("unit", ""))
        return cls(d["name"], d.get("low"), d.get("high"), scale=d.get("scale", "linear"), unit=d.get("unit", ""))


class ParamSpace:
    """An ordered collection of ``Param``; batches are arrays ``(N, P)`` in this order."""

    def __init__(self, params: Iterable[Param]):
        self.params: tuple[Param, ...] = tuple(params)
        if not self.params:
            raise ParamSpaceError("a parameter space needs at least one parameter")
        for p in self.params:
            if not isinstance(p, Param):
                raise ParamSpaceError(f"expected Param, got {type(p).__name__}")
        names = [p.name for p in self.params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ParamSpaceError(f"duplicate parameter names: {', '.join(dupes)}")
        self._index = {n: i for i, n in enumerate(names)}

    # -- basic container behaviour ------------------------------------------------
    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self):
        return iter(self.params)

    def __getitem__(self, key: int | str) -> Param:
        return self.params[self._index[key]] if isinstance(key, str) else self.params[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpace) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"ParamSpace({len(self)} params, fingerprint={self.fingerprint})"

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def index(self, name: str) -> int:
        return self._index[name]

    def differences(self, other: "ParamSpace", mine: str, theirs: str, show: int = 3) -> list[str]:
        """How ``other`` differs from this space, in a few phrases (none when they are the same space):
        the counts, the names only one of them has, the first parameters whose values differ.
        ``mine`` and ``theirs`` name the two sides (``"the model"``, ``"the store"``)."""
        if self.fingerprint == other.fingerprint:
            return []

        def few(names: list[str]) -> str:
            return ", ".join(names[:show]) + (f" and {len(names) - show} more" if len(names) > show else "")

        a, b = {p.name: p for p in self.params}, {p.name: p for p in other.params}
        out = [f"{len(a)} vs {len(b)} parameters"] if len(a) != len(b) else []
        for side, names in ((mine, [n for n in a if n not in b]), (theirs, [n for n in b if n not in a])):
            if names:
                out.append(f"only {side} has {few(names)}")
        changed = [f"{n} {a[n].span} vs {b[n].span}" for n in a if n in b and a[n] != b[n]]
        out += changed[:show] + ([f"{len(changed) - show} more ranges differ"] if len(changed) > show else [])
        return out or ["the same parameters in another order"]

    # -- conversions ------------------------------------------------------------
    def _check_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != len(self):
            raise ParamSpaceError(f"expected an array (N, {len(self)}), got shape {x.shape}")
        return x

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Natural units ``(N, P)`` -> unit scale ``(N, P)``."""
        x = self._check_batch(x)
        return np.stack([p.to_unit(x[:, j]) for j, p in enumerate(self.params)], axis=1)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Unit scale ``(N, P)`` -> natural units ``(N, P)``; values are clipped to [0, 1]."""
        u = self._check_batch(u)
        return np.stack([p.from_unit(u[:, j]) for j, p in enumerate(self.params)], axis=1)

    def to_dict(self, x: np.ndarray) -> dict[str, float]:
        """One row in natural units -> ``{name: value}`` (ints and choices as Python numbers)."""
        row = self._check_batch(x)[0]
        out: dict[str, float] = {}
        for p, v in zip(self.params, row):
            out[p.name] = int(v) if p.scale == "int" or (p.scale == "choice" and float(v).is_integer()) else float(v)
        return out

    def from_dict(self, d: dict[str, float]) -> np.ndarray:
        """``{name: value}`` with every parameter -> one row ``(P,)`` in natural units."""
        missing = [n for n in self.names if n not in d]
        extra = [n for n in d if n not in self._index]
        if missing or extra:
            raise ParamSpaceError(f"parameter names do not match the space: missing {missing}, unknown {extra}")
        return np.array([float(d[n]) for n in self.names])

    # -- sampling ---------------------------------------------------------------
    def sample_unit(self, start: int, stop: int, seed: int = 0, sampling: str = "uniform") -> np.ndarray:
        """Unit-scale samples with indices ``start .. stop-1`` of the sequence ``(seed, sampling)``.

        Sample ``i`` depends only on ``(seed, i)``: ``sample_unit(0, 100)[40:60]``
        equals ``sample_unit(40, 60)`` bit for bit.
        """
        start, stop, seed = int(start), int(stop), int(seed)
        if start < 0 or stop < start:
            raise ParamSpaceError(f"need 0 <= start <= stop, got {start}, {stop}")
        if seed < 0:
            raise ParamSpaceError(f"seed must be >= 0, got {seed}")
        n, d = stop - start, len(self)
        if sampling == "uniform":
            out = np.empty((n, d))
            for row, i in enumerate(range(start, stop)):
                # Philox is counter based: sample i owns the counter block i * 2**64,
                # which no other sample's draws can reach.
                bitgen = np.random.Philox(key=seed, counter=[0, i, 0, 0])
                out[row] = np.random.Generator(bitgen).random(d)
            return out
        if sampling == "sobol":
            from scipy.stats import qmc

            engine = qmc.Sobol(d=d, scramble=True, seed=seed)
            if start:
                engine.fast_forward(start)
            with warnings.catch_warnings():
                # balance warnings for non-power-of-two n do not apply to slices
                warnings.simplefilter("ignore", UserWarning)
                return engine.random(n) if n else np.empty((0, d))
        raise ParamSpaceError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")

    def sample(self, start: int, stop: int, seed: int = 0, sampling: str = "uniform") -> np.ndarray:
        """Samples ``start .. stop-1`` in natural units (see ``sample_unit``)."""
        return self.from_unit(self.sample_unit(start, stop, seed, sampling))

    def validate(self, x: np.ndarray) -> np.ndarray:
        """Raise ``ParamSpaceError`` naming the first value outside the space."""
        x = self._check_batch(x)
        if not np.isfinite(x).all():
            i, j = np.argwhere(~np.isfinite(x))[0]
            raise ParamSpaceError(f"sample {i}: {self.params[j].name} is not finite")
        for j, p in enumerate(self.params):
            col = x[:, j]
            if p.scale == "choice":
                bad = ~np.isin(col, np.asarray(p.choices))
            else:
                bad = (col < p.low - 1e-9 * abs(p.low)) | (col > p.high + 1e-9 * abs(p.high))
            if bad.any():
                i = int(np.argmax(bad))
                raise ParamSpaceError(f"sample {i}: {p.name}={float(col[i])!r} is outside the space")
        return x

    # -- serialisation ----------------------------------------------------------
    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.params]

    def dumps(self) -> str:
        """Canonical JSON text (sorted keys, no spaces): the input of the fingerprint."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | Sequence[dict[str, Any]]) -> "ParamSpace":
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as e:
                raise ParamSpaceError(f"parameter space JSON is not valid: {e}") from None
        if not isinstance(data, (list, tuple)):
            raise ParamSpaceError("parameter space JSON must be a list of parameters")
        return cls(Param.from_json(d) for d in data)

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON."""
        return hashlib.sha256(self.dumps().encode()).hexdigest()[:16]
