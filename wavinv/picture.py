"""The generator's own picture of a sound: its ``spectrogram`` function as a frontend.

A generator may define ``spectrogram(waveforms (B, n_samples)) -> (B, F, T)``:
the user's own dB spectrogram, the picture their algorithm makes beside the
audio. Optionally ``spectrogram_range = (low, high)`` says what dB span an 8-bit
image of it covers (default -100 0, as wavinv's own PNGs). When a generator has
the function, a store made with it records the frontend ``{"kind": "generator",
...}`` and everything that reads that store's pictures (fits, targets, ranking,
the bench) calls the function instead of the built-in STFT.

The function is code, so it is called only on a generator the user named (or a
built-in one). What it computes is pinned by a **probe**: the picture of a
fixed, deterministic clip (a chirp, a decaying tone and a click), rounded to
0.01 dB and hashed. Stores and models record the probe; a generator whose
function now draws another picture of the probe is refused, naming both, so a
model never silently meets another picture.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import numpy as np

from .errors import GeneratorError, InputError, RenderError
from .lazy import LazyArray, clip_batch, iter_batches
from .targets import DEFAULT_DB_RANGE

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

KIND = "generator"
PROBE_VERSION = 1
BATCH = 16  # clips per call of the user's function


def has_picture(gen: Any) -> bool:
    """Whether a generator defines its own ``spectrogram(waveforms)``."""
    return callable(getattr(gen, "spectrogram", None))


def probe_clip(sample_rate: int, n_samples: int) -> np.ndarray:
    """The fixed clip whose picture pins a spectrogram function: no random numbers, the same on every machine."""
    t = np.arange(int(n_samples), dtype=np.float64) / float(sample_rate)
    dur = max(t[-1], 1.0 / sample_rate)
    f0, f1 = 0.01 * sample_rate, 0.4 * sample_rate
    k = np.log(f1 / f0) / dur
    chirp = np.sin(2 * np.pi * f0 * np.expm1(k * t) / k)  # exponential sweep, f0 -> f1
    tone = np.sin(2 * np.pi * (sample_rate / 7.0) * t) * np.exp(-3.0 * t / dur)
    click = np.zeros_like(t)
    click[len(t) // 2] = 1.0
    return (0.4 * chirp + 0.3 * tone + 0.2 * click).astype(np.float32)


def _digest(picture: np.ndarray) -> str:
    h = hashlib.sha256(f"probe-v{PROBE_VERSION}:{picture.shape}".encode())
    h.update(np.rint(np.asarray(picture, dtype=np.float64) * 100.0).astype("<i8").tobytes())
    return h.hexdigest()[:16]


def _db_range(gen: Any) -> list[float]:
    rng = getattr(gen, "spectrogram_range", None)
    if rng is None:
        return list(DEFAULT_DB_RANGE)
    try:
        lo, hi = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise GeneratorError(f"{gen.name}: spectrogram_range must be (low, high) in dB, got {rng!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise GeneratorError(f"{gen.name}: spectrogram_range must be finite with low < high, got {rng!r}")
    return [lo, hi]


class GeneratorPicture:
    """A generator's ``spectrogram`` function, used where wavinv would use its ``Spectrogram`` frontend.

    ``expected``: a recorded config (a store's or a model's frontend) the function
    must still match; a mismatch raises ``error`` naming ``owner``. Call it on
    waveforms ``(B, n_samples)`` for float32 ``(B, F, T)``; ``transform`` works
    in batches and takes a ``LazyArray``.
    """

    kind = KIND

    def __init__(self, gen: Any, expected: Mapping[str, Any] | None = None, owner: str = "", error: type = GeneratorError):
        if not has_picture(gen):
            raise error(f"{owner or 'this'} pictures clips with generator {gen.name!r}'s own spectrogram function, and {gen.name!r} has none")
        self._gen = gen
        self._shape: tuple[int, int] | None = None
        probe = self(probe_clip(gen.sample_rate, gen.n_samples)[None])[0]
        self._shape = probe.shape
        self._cfg = {
            "kind": KIND,
            "generator": gen.name,
            "sample_rate": int(gen.sample_rate),
            "n_samples": int(gen.n_samples),
            "n_freq": int(probe.shape[0]),
            "n_frames": int(probe.shape[1]),
            "probe": _digest(probe),
            "db_range": _db_range(gen),
        }
        if expected is not None:
            old = {k: expected.get(k) for k in ("probe", "n_freq", "n_frames", "n_samples")}
            new = {k: self._cfg[k] for k in old}
            if old != new:
                raise error(
                    f"{owner} was made with {expected.get('generator')!r}'s spectrogram function drawing the probe clip as "
                    f"{old['n_freq']}x{old['n_frames']} (probe {old['probe']}); {gen.name!r}'s function now draws "
                    f"{new['n_freq']}x{new['n_frames']} (probe {new['probe']}): another picture. "
                    "Restore the function, or fit (and generate) again with the current one"
                )

    # the parts of the Spectrogram module's interface that readers use
    def config(self) -> dict[str, Any]:
        return dict(self._cfg)

    @property
    def n_samples(self) -> int:
        return int(self._gen.n_samples)

    @property
    def output_shape(self) -> tuple[int, int]:
        return (self._cfg["n_freq"], self._cfg["n_frames"])

    @property
    def db_range(self) -> tuple[float, float]:
        return tuple(self._cfg["db_range"])

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        waves = np.ascontiguousarray(waves, dtype=np.float32)
        name = self._gen.name
        try:
            out = self._gen.spectrogram(waves)
        except (Exception, SystemExit) as e:  # the user's code may raise anything
            raise RenderError(f"{name}: spectrogram failed on a batch of {len(waves)} clips: {type(e).__name__}: {e}") from e
        if hasattr(out, "detach"):  # torch tensors are accepted
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if out.ndim != 3 or out.shape[0] != len(waves) or (self._shape is not None and out.shape[1:] != self._shape):
            want = f"({len(waves)}, F, T)" if self._shape is None else f"({len(waves)}, {self._shape[0]}, {self._shape[1]})"
            raise RenderError(f"{name}: spectrogram returned shape {out.shape}, expected {want}")
        if not np.issubdtype(out.dtype, np.floating):
            raise RenderError(f"{name}: spectrogram returned dtype {out.dtype}, expected float dB values")
        out = out.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise RenderError(f"{name}: spectrogram returned NaN or Inf (floor the dB values, e.g. 20*log10(max(|X|, 1e-5)))")
        return out

    def transform(self, waves: "np.ndarray | LazyArray", batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Pictures of clips ``(N, n_samples)`` -> ``(N, F, T)``; one clip ``(n_samples,)`` -> ``(F, T)``."""
        from tqdm.auto import tqdm

        waves, single = clip_batch(waves, self.n_samples, f"{self._gen.name}'s spectrogram")
        out = np.empty((len(waves), *self.output_shape), dtype=np.float32)
        with tqdm(total=len(waves), disable=not progress, desc="spectrograms", unit="clip") as bar:
            for sel, rows in iter_batches(waves, batch_size or BATCH):
                out[sel] = self(rows)
                bar.update(len(sel))
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"GeneratorPicture({self._gen.name!r}, {self._cfg['n_freq']}x{self._cfg['n_frames']}, probe {self._cfg['probe']})"


def picture_for(cfg: Mapping[str, Any], generator: Any = None, owner: str = "", error: type = InputError):
    """The frontend a recorded config describes: a ``Spectrogram``, or the generator's own function.

    ``generator`` (an object) is needed, and checked against the record, when the
    config's kind is ``"generator"``.
    """
    if cfg.get("kind") == KIND:
        if generator is None:
            raise error(
                f"{owner} pictures clips with generator {cfg.get('generator')!r}'s own spectrogram function: "
                "name the generator (--generator SPEC)"
            )
        return GeneratorPicture(generator, expected=cfg, owner=owner, error=error)
    from .frontend import Spectrogram

    return Spectrogram.from_config(cfg)


def picture_label(cfg: Mapping[str, Any] | None) -> str:
    """One line saying which picture a frontend config describes (``wavinv info``)."""
    if not cfg:
        return "none recorded"
    if cfg.get("kind") == KIND:
        lo, hi = cfg.get("db_range") or DEFAULT_DB_RANGE
        return (
            f"the generator's own spectrogram function ({cfg.get('generator')}): {cfg['n_freq']}x{cfg['n_frames']}, "
            f"probe {cfg.get('probe')}, images span {lo:g}..{hi:g} dB"
        )
    return f"wavinv {cfg['kind']} {cfg['n_freq']}x{cfg['n_frames']} (n_fft {cfg.get('n_fft')}, hop {cfg.get('hop_length')})"


def picture_differences(recorded: Mapping[str, Any] | None, actual: Mapping[str, Any] | None) -> list[str]:
    """What differs between two recorded pictures (frontend configs), in a phrase (none when they are the same)."""
    recorded, actual = (json.loads(json.dumps(c)) if c else {} for c in (recorded, actual))  # tuples and lists alike
    if recorded == actual:
        return []
    if recorded.get("kind") != actual.get("kind"):
        return [f"picture {picture_label(recorded)} vs {picture_label(actual)}"]
    keys = sorted(k for k in {*recorded, *actual} if recorded.get(k) != actual.get(k))
    return ["picture (" + ", ".join(f"{k} {recorded.get(k)!r} vs {actual.get(k)!r}" for k in keys[:4]) + (", ..." if len(keys) > 4 else "") + ")"]


def generator_picture(gen: Any):
    """The picture a store of ``gen`` records: its own function, else wavinv's default frontend for its clips."""
    if has_picture(gen):
        return GeneratorPicture(gen)
    from .frontend import Spectrogram, frontend_config

    return Spectrogram.from_config(frontend_config(sample_rate=gen.sample_rate, n_samples=gen.n_samples))


def grid_axes(cfg: Mapping[str, Any] | None, sample_rate: int | None, n_samples: int | None) -> dict[str, Any]:
    """``spectrogram_grid`` keywords for pictures made by ``cfg``: its dB span, and time/kHz axes only for a linear STFT."""
    cfg = cfg or {}
    linear = cfg.get("kind", "stft") == "stft" and sample_rate and n_samples
    return {
        "db_range": tuple(cfg.get("db_range") or DEFAULT_DB_RANGE),
        "sample_rate": sample_rate if linear else None,
        "duration": n_samples / sample_rate if linear else None,
    }
