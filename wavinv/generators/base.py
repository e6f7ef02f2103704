"""The generator protocol, a wrapper for a user's render function, and render checks."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import GeneratorError, InputError, RenderError
from ..limits import positive_int
from ..params import ParamSpace

__all__ = ["Generator", "FunctionGenerator", "check_generator", "identity_differences", "identity_label"]


@runtime_checkable
class Generator(Protocol):
    """What wavinv needs of a generator.

    ``render`` takes float64 ``(B, P)`` in natural units, columns in ``space``
    order, and returns float32 ``(B, n_samples)``. It must be deterministic and
    each clip must depend only on its own row (never on the rest of the batch).

    A generator with internal randomness (noise, random LFOs) may accept
    ``render(params, seed=None)``: ``seed=None`` is its deterministic default and
    an int another realisation of the same patch. The benchmark uses it for the
    same-sound floor (``takes_seed``).

    A generator may also define ``spectrogram(waveforms (B, n_samples)) -> (B, F, T)``,
    float dB: its own picture of a sound. Stores, fits, targets, ranking and the
    bench then use it instead of wavinv's frontend (``wavinv.picture``). An
    optional ``spectrogram_range = (low, high)`` is the dB span of an 8-bit image of it.

    A generator written in torch may define ``render_torch(params)``: a float32
    tensor ``(B, P)`` in natural units -> ``(B, n_samples)``, the clips ``render``
    makes, differentiable in the continuous (linear and log) parameters. The
    search can then follow the gradient of the distance to the target through
    the generator (``wavinv.gradient``).
    """

    space: ParamSpace
    sample_rate: int
    n_samples: int
    name: str
    version: str

    def render(self, params: np.ndarray) -> np.ndarray: ...


def _accepts_seed(fn: Callable) -> bool:
    try:
        p = inspect.signature(fn).parameters.get("seed")
    except (TypeError, ValueError):
        return False
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def takes_seed(gen: Any) -> bool:
    """Whether ``gen.render`` accepts a ``seed`` keyword (another noise realisation)."""
    if isinstance(gen, FunctionGenerator):
        return gen.seeded
    return _accepts_seed(gen.render)


class FunctionGenerator:
    """Wrap a plain function ``render(params (B, P)) -> (B, n_samples)`` as a generator.

    When the function takes a ``seed`` keyword, so does the generator's ``render``.
    ``spectrogram`` (optional): the user's own picture, ``(B, n_samples) -> (B, F, T)``
    float dB, with ``spectrogram_range`` its images' dB span (see ``Generator``).
    ``render_torch`` (optional): the same render on torch tensors, differentiable (see ``Generator``).
    """

    def __init__(
        self,
        space: ParamSpace,
        render: Callable[[np.ndarray], np.ndarray],
        sample_rate: int,
        n_samples: int,
        name: str,
        version: str = "1",
        spectrogram: Callable[[np.ndarray], np.ndarray] | None = None,
        spectrogram_range: tuple[float, float] | None = None,
        render_torch: Callable[[Any], Any] | None = None,
    ):
        if not isinstance(space, ParamSpace):
            raise GeneratorError(f"space must be a ParamSpace, got {type(space).__name__}")
        if not callable(render):
            raise GeneratorError("render must be callable")
        if spectrogram is not None:
            if not callable(spectrogram):
                raise GeneratorError("spectrogram must be callable (waveforms (B, n_samples) -> (B, F, T) dB)")
            self.spectrogram = spectrogram  # only when given: its absence says "use wavinv's frontend"
        if spectrogram_range is not None:
            self.spectrogram_range = tuple(spectrogram_range)
        if render_torch is not None:
            if not callable(render_torch):
                raise GeneratorError("render_torch must be callable (a tensor (B, P) -> (B, n_samples), differentiable)")
            self.render_torch = render_torch  # only when given: its absence says "not differentiable"
        self.space = space
        self._render = render
        self.sample_rate = int(sample_rate)
        self.n_samples = int(n_samples)
        self.name = str(name)
        self.version = str(version)
        self.seeded = _accepts_seed(render)
        check_generator(self)

    def render(self, params: np.ndarray, seed: int | None = None) -> np.ndarray:
        params = np.asarray(params, dtype=np.float64)
        if seed is None:
            return self._render(params)
        if not self.seeded:
            raise GeneratorError(f"{self.name}: its render function takes no seed")
        return self._render(params, seed=seed)

    def __repr__(self) -> str:
        return f"FunctionGenerator({self.name!r} v{self.version}, {len(self.space)} params, {self.n_samples} samples @ {self.sample_rate} Hz)"


def check_generator(obj: Any, origin: str = "") -> Any:
    """Raise ``GeneratorError`` unless ``obj`` follows the generator protocol."""
    where = f" ({origin})" if origin else ""
    missing = [a for a in ("space", "sample_rate", "n_samples", "name", "version", "render") if not hasattr(obj, a)]
    if missing:
        raise GeneratorError(f"{type(obj).__name__}{where} is not a generator: missing {', '.join(missing)}")
    if not isinstance(obj.space, ParamSpace):
        raise GeneratorError(f"{type(obj).__name__}{where}: space must be a wavinv ParamSpace")
    if not callable(obj.render):
        raise GeneratorError(f"{type(obj).__name__}{where}: render is not callable")
    for attr in ("sample_rate", "n_samples"):
        try:
            positive_int(attr, getattr(obj, attr))
        except InputError:
            raise GeneratorError(f"{type(obj).__name__}{where}: {attr} must be a positive int, got {getattr(obj, attr)!r}") from None
    if not isinstance(obj.name, str) or not obj.name:
        raise GeneratorError(f"{type(obj).__name__}{where}: name must be a non-empty str, got {obj.name!r}")
    if isinstance(obj.version, bool) or not isinstance(obj.version, (str, int, np.integer)):
        raise GeneratorError(f"{type(obj).__name__}{where}: version must be a str or an int, got {obj.version!r}")
    return obj


def render_checked(gen: Generator, params: np.ndarray, offset: int = 0, seed: int | None = None, ids: np.ndarray | None = None) -> np.ndarray:
    """Render and validate: float32 ``(B, n_samples)``, finite. Errors name the samples ``offset``,
    ``offset + 1``, ... or, for rows that are not consecutive samples, their ``ids``.

    ``seed`` (for generators that ``takes_seed``) renders another noise realisation.
    """
    names = np.arange(offset, offset + len(params)) if ids is None else np.asarray(ids)
    out = _render_shaped(gen, params, names, seed)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise RenderError(f"{gen.name}: sample {names[i]} contains NaN or Inf")
    return out


def render_finite(gen: Generator, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Render for a search: ``(clips, finite)``, where a clip with NaN or Inf is zeroed and flagged
    ``False`` instead of failing the batch (a search may try a corner the generator cannot render)."""
    out = _render_shaped(gen, params, np.arange(len(params)), None)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        out = np.where(finite[:, None], out, np.float32(0.0))
    return out, finite


def _render_shaped(gen: Generator, params: np.ndarray, names: np.ndarray, seed: int | None) -> np.ndarray:
    """Render; refuse anything but float32 ``(B, n_samples)`` (``RenderError``). ``names``: the rows' sample numbers, for errors."""
    params = np.asarray(params, dtype=np.float64)
    try:
        out = gen.render(params) if seed is None else gen.render(params, seed=seed)
    except (Exception, SystemExit) as e:  # a user's code may raise anything; report it as a render failure
        which = f"{names[0]}..{names[-1]}" if len(names) else "(none)"
        raise RenderError(f"{gen.name}: render failed for samples {which}: {type(e).__name__}: {e}") from e
    if hasattr(out, "detach"):  # torch tensors are accepted
        out = out.detach().cpu().numpy()
    if not isinstance(out, np.ndarray):
        raise RenderError(f"{gen.name}: render returned {type(out).__name__}, expected a numpy float32 array")
    expected = (len(params), gen.n_samples)
    if out.shape != expected:
        raise RenderError(f"{gen.name}: render returned shape {out.shape}, expected {expected}")
    if out.dtype != np.float32:
        raise RenderError(f"{gen.name}: render returned dtype {out.dtype}, expected float32")
    return out


def generator_identity(gen: Generator, spec: str | None = None) -> dict[str, Any]:
    """What identifies a generator in stores and models (JSON-serialisable)."""
    return {
        "name": gen.name,
        "version": int(gen.version) if isinstance(gen.version, np.integer) else gen.version,  # plain JSON types only
        "spec": spec,
        "sample_rate": int(gen.sample_rate),
        "n_samples": int(gen.n_samples),
        "space": gen.space.to_json(),
        "fingerprint": gen.space.fingerprint,
    }


def identity_label(ident: dict[str, Any]) -> str:
    """A generator identity in words: ``'synth100' v3 (100 params, 16352 samples @ 16000 Hz)``."""
    space = ident.get("space")
    count = f"{len(space)} params, " if isinstance(space, list) else ""
    return f"{ident.get('name')!r} v{ident.get('version')} ({count}{ident.get('n_samples')} samples @ {ident.get('sample_rate')} Hz)"


def identity_differences(recorded: dict[str, Any], actual: dict[str, Any], mine: str, theirs: str) -> list[str]:
    """What differs between two generator identities, in a few phrases (none: the same generator, however
    it was loaded; the spec does not count). ``mine`` and ``theirs`` name the two sides in the phrases.

    The parameter space is compared by its fingerprint, and described (counts, names, ranges)
    where both identities hold it: a model file's manifest may not."""
    out = [f"{key} {recorded.get(key)!r} vs {actual.get(key)!r}" for key in ("name", "version") if str(recorded.get(key)) != str(actual.get(key))]
    if (recorded.get("sample_rate"), recorded.get("n_samples")) != (actual.get("sample_rate"), actual.get("n_samples")):
        out.append(f"clips of {recorded.get('n_samples')} samples @ {recorded.get('sample_rate')} Hz vs {actual.get('n_samples')} @ {actual.get('sample_rate')} Hz")
    if recorded.get("fingerprint") != actual.get("fingerprint"):
        detail = []
        if isinstance(recorded.get("space"), list) and isinstance(actual.get("space"), list):
            detail = ParamSpace.from_json(recorded["space"]).differences(ParamSpace.from_json(actual["space"]), mine, theirs)
        fingerprints = f"fingerprint {recorded.get('fingerprint')} vs {actual.get('fingerprint')}"
        out.append(f"parameter space ({'; '.join([*detail, fingerprints])})")
    return out
