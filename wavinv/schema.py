"""Shape checks of the JSON documents wavinv reads back: store metadata, model manifests.

Each ``*_problem`` function returns ``None`` when the document is well formed,
else a short sentence saying what is wrong; the caller raises its own typed error
(``StoreError`` for stores, ``ModelError`` for models), so a damaged or edited
document is reported as such, never as a ``KeyError`` or ``ZeroDivisionError``.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .errors import ParamSpaceError
from .params import SAMPLINGS, ParamSpace

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def field_problem(doc: Mapping[str, Any], key: str, kind: str, low: int | None = None) -> str | None:
    """A problem with ``doc[key]`` as ``kind`` ("int", "str", "str|int", "str|None", "dict", "dict|None"), or None."""
    if key not in doc:
        return f"{key!r} is missing"
    v = doc[key]
    ok = {
        "int": _is_int(v),
        "str": isinstance(v, str),
        "str|int": isinstance(v, str) or _is_int(v),
        "str|None": v is None or isinstance(v, str),
        "dict": isinstance(v, dict),
        "dict|None": v is None or isinstance(v, dict),
    }[kind]
    if not ok:
        return f"{key!r} must be {kind.replace('|', ' or ')}, got {v!r}"[:200]
    if low is not None and v < low:
        return f"{key!r} must be >= {low}, got {v!r}"
    return None


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def identity_problem(ident: Any) -> str | None:
    """A generator identity (``generator_identity``): name, version, spec, rate, length, space, fingerprint."""
    if not isinstance(ident, dict):
        return f"the generator identity must be a mapping, got {type(ident).__name__}"
    p = _first(
        field_problem(ident, "name", "str"),
        field_problem(ident, "version", "str|int"),
        field_problem(ident, "spec", "str|None"),
        field_problem(ident, "sample_rate", "int", 1),
        field_problem(ident, "n_samples", "int", 1),
        field_problem(ident, "fingerprint", "str"),
    )
    if p:
        return f"generator {p}"
    if "space" not in ident:
        return "generator 'space' is missing"
    try:
        space = ParamSpace.from_json(ident["space"])
    except (ParamSpaceError, TypeError, ValueError, KeyError) as e:
        return f"generator space is not valid: {e}"
    if space.fingerprint != ident["fingerprint"]:
        return f"generator space has fingerprint {space.fingerprint}, the document says {ident['fingerprint']}"
    return None


def frontend_problem(cfg: Any) -> str | None:
    """A recorded frontend config: its kind and sizes (the rest is checked when it is built)."""
    if not isinstance(cfg, dict):
        return f"the frontend must be a mapping, got {type(cfg).__name__}"
    p = _first(
        field_problem(cfg, "kind", "str"),
        *(field_problem(cfg, k, "int", 1) for k in ("sample_rate", "n_samples", "n_freq", "n_frames")),
    )
    return f"frontend {p}" if p else None


def store_meta_problem(meta: Any, format_versions: tuple[int, ...]) -> str | None:
    """The ``wavinv`` attributes of a store's ``zarr.json`` (one of ``format_versions``)."""
    if not isinstance(meta, dict):
        return "the wavinv attributes must be a mapping"
    if meta.get("format_version") not in format_versions:
        return f"store format {meta.get('format_version')!r}, this wavinv reads {' and '.join(map(str, format_versions))}"
    p = _first(
        field_problem(meta, "n", "int", 1),
        field_problem(meta, "chunk", "int", 1),
        field_problem(meta, "seed", "int", 0),
        field_problem(meta, "method", "str"),
        field_problem(meta, "sample_rate", "int", 1),
        field_problem(meta, "n_samples", "int", 1),
        field_problem(meta, "waveform_dtype", "str"),
        field_problem(meta, "frontend", "dict|None"),
        field_problem(meta, "wavinv_version", "str"),
        field_problem(meta, "created", "str"),
    )
    if p:
        return p
    if meta["method"] not in SAMPLINGS:  # the sampling scheme, stored under its first name
        return f"'method' (the sampling) must be one of {', '.join(SAMPLINGS)}, got {meta['method']!r}"
    if meta["waveform_dtype"] != "float32":
        return f"'waveform_dtype' must be float32, got {meta['waveform_dtype']!r}"
    p = identity_problem(meta.get("generator"))
    if p:
        return p
    gen = meta["generator"]
    if (gen["sample_rate"], gen["n_samples"]) != (meta["sample_rate"], meta["n_samples"]):
        return "the generator's sample_rate and n_samples disagree with the store's"
    return frontend_problem(meta["frontend"]) if meta["frontend"] is not None else None


def manifest_problem(manifest: Any, format: str, format_version: int, inputs: tuple[str, ...]) -> str | None:
    """The manifest saved beside a model: what ``wavinv info`` shows of it, too."""
    if not isinstance(manifest, dict):
        return f"the manifest must be a mapping, got {type(manifest).__name__}"
    if manifest.get("format") != format:
        return "not a wavinv model file"
    if manifest.get("format_version") != format_version:
        return f"model format {manifest.get('format_version')!r} is not supported (this wavinv reads {format_version})"
    p = _first(
        *(field_problem(manifest, k, "str") for k in ("method", "input", "estimator", "wavinv_version")),
        field_problem(manifest, "generator", "dict"),
        *(f"{k!r} must be dict, got {manifest[k]!r}"[:200] for k in ("store", "validation", "training") if not isinstance(manifest.get(k, {}), dict)),
    )
    if p:
        return p
    if manifest["input"] not in inputs:
        return f"'input' must be one of {', '.join(inputs)}, got {manifest['input']!r}"
    gen = manifest["generator"]
    p = _first(*(field_problem(gen, k, kind) for k, kind in (("name", "str"), ("version", "str|int"), ("spec", "str|None"), ("fingerprint", "str"))))
    return f"generator {p}" if p else frontend_problem(manifest.get("frontend"))
