"""The files a bench keeps between runs in ``out/models`` and ``out/evals``, and the fitted-model cache.

A fitted model is saved with a JSON sidecar holding the key of its settings;
a later run with the same key loads it instead of fitting again. Evaluations
are keyed the same way (see ``run``), so an interrupted bench resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from ..inverter import Inverter, fit_inverter, load
from ..methods import build_method
from ..outputs import atomic_path
from ..store import Store

# one logger for the whole package: its lines read "wavinv.bench: ..." wherever they come from
log = logging.getLogger(__package__)


def hash_key(obj: Any) -> str:
    """A short, stable digest of a JSON-able key (an evaluation's key names its model by it)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON in ``path``, or None where it is missing or unreadable (then the work is redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def json_text(obj: Any) -> str:
    """The one JSON layout of every file the bench writes."""
    return json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n"


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` whole or not at all, so an interruption never leaves a half file to resume from."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(obj))


def gallery_path(out: Path, name: str, row: int) -> Path:
    """Where a row's target and best candidate pictures for one gallery target are kept."""
    return out / "evals" / f"{name}.gallery-{row}.npz"


def model_info(out: Path, name: str, model_key: dict[str, Any]) -> dict[str, Any] | None:
    """The sidecar of a fitted model whose settings match ``model_key``, else None."""
    side = read_json(out / "models" / f"{name}.json")
    if side and side.get("key") == json.loads(json.dumps(model_key, default=str)) and (out / "models" / f"{name}.joblib").is_file():
        return side
    return None


def fit_or_load(store: Store, gen, out: Path, name: str, model_key, method: str, input: str, model, progress: bool) -> tuple[Inverter, dict]:
    """The model ``model_info`` found (``model``), loaded; else a new fit, saved with its sidecar.

    The caller counts it as reused when it passed a ``model``, as fitted otherwise.
    """
    path = out / "models" / f"{name}.joblib"
    if model is not None:
        log.info("%s: reusing the fitted model %s", name, path)
        return load(path), model
    log.info("%s: fitting on %s", name, store.location)
    # settings that do not change the model, so they are not part of its key: progress bars,
    # and a checkpoint from which an interrupted neural fit resumes
    overrides = dict(model_key["overrides"])
    known = build_method(method).get_params()
    ckpt = out / "models" / f"{name}.ckpt"
    if "progress" in known and "progress" not in overrides:
        overrides["progress"] = progress
    if "checkpoint" in known and "checkpoint" not in overrides:
        overrides["checkpoint"] = str(ckpt)
    t0 = time.perf_counter()
    inv = fit_inverter(store, method, input, overrides=overrides, generator=gen)
    wall = time.perf_counter() - t0
    inv.save(path)
    ckpt.unlink(missing_ok=True)  # the saved model supersedes it
    model = {
        "key": model_key,
        "fit_s": float(inv.validation.get("fit_s", wall)),
        "fit_wall_s": round(wall, 3),
        "model_mb": round(path.stat().st_size / 1e6, 3),
        "validation": inv.validation,
    }
    write_json(out / "models" / f"{name}.json", model)
    return inv, model
