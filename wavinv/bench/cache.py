"""The files a bench keeps between runs in ``out/models`` and ``out/evals``, and the fitted-model cache.

A fitted model is saved with a JSON sidecar holding the key of its settings;
a later run with the same key loads it instead of fitting again. A row's
per-target results are kept under a key naming its model and its inversion
settings, so an interrupted bench resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import MismatchError
from ..gradient import LEARNING_RATE
from ..inverter import GRADIENT_STARTS, Inverter, fit_inverter, fitted_mismatch, load
from ..methods import build_method
from ..modelfile import read_manifest
from ..outputs import atomic_path
from ..refine import MIN_DISTANCE, SEARCH_VERSION
from ..store import Store
from .settings import Entry, Settings

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

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


# hyper-parameters that do not change the fitted model: left out of its key
UNKEYED = ("progress", "checkpoint")


def make_model_key(store: Store, s: Settings, method: str, input: str) -> dict[str, Any]:
    """What a fitted model depends on: a change to any of it means fitting again, a changed
    default of the method's hyper-parameters included."""
    params = {k: v for k, v in build_method(method).get_params(deep=False).items() if k not in UNKEYED}
    return {
        "store": store.fingerprint,
        "method": method,
        "input": input,
        "overrides": s.overrides_for(method, input),
        "defaults": params,
        "profile": s.profile,
        "wavinv": __version__,
    }


def make_eval_key(model_key: dict[str, Any], s: Settings, entry: Entry) -> dict[str, Any]:
    """What a row's per-target results depend on: its model and how it inverts (a change means evaluating again)."""
    key = {"model": hash_key(model_key), "k": s.k, "draws": s.draws, "samples": s.samples, "seed": s.seed, "gallery": s.gallery}
    if entry.sampler is not None:
        key["sampler"] = entry.sampler
    if entry.refine:
        key["refine"] = entry.refine
        key["search"] = {"version": SEARCH_VERSION, "min_distance": MIN_DISTANCE}
        if callable(getattr(build_method(model_key["method"]), "screen", None)):  # its search renders what its screen picks
            key["search"]["screen_factor"] = s.screen_factor
    if entry.gradient:
        key["gradient"] = {"steps": entry.gradient, "starts": GRADIENT_STARTS, "lr": LEARNING_RATE}
    if entry.draws is not None:
        key["draws"] = entry.draws
    if entry.searches and s.budgets:
        key["budgets"] = s.budgets  # each budget's best so far joins the exact ranking: another set of candidates
    if s.targets_key() is not None:  # absent for the store's own test clips: results made before the option stay valid
        key["targets"] = s.targets_key()
    return key


def load_evals(path: Path, key: dict[str, Any], entry: Entry, model_name: str) -> dict[str, Any]:
    """The row's saved per-target results if they were made under ``key``, else a new empty record."""
    ev = read_json(path)
    if not ev or ev.get("key") != json.loads(json.dumps(key)):
        ev = {"key": key, "method": entry.label, "input": entry.input, "model_name": model_name, "targets": {}}
    return ev


def model_info(out: Path, name: str, model_key: dict[str, Any]) -> dict[str, Any] | None:
    """The sidecar of a fitted model whose settings match ``model_key``, else None."""
    side = read_json(out / "models" / f"{name}.json")
    if side and side.get("key") == json.loads(json.dumps(model_key, default=str)) and (out / "models" / f"{name}.joblib").is_file():
        return side
    return None


def refuse_foreign_model(path: Path, manifest: dict[str, Any], store: Store) -> None:
    """``MismatchError`` when the model at ``path`` (its ``manifest``) was fitted on another generator,
    parameter space or picture than ``store`` holds: a bench never scores it on that store."""
    problem = fitted_mismatch(manifest, store.generator, store.frontend_config, str(path), f"the store {store.location}")
    if problem:
        raise MismatchError(f"{problem}; delete it to fit again")


def check_reusable(out: Path, name: str, model_key: dict[str, Any], store: Store) -> None:
    """Refuse, before any work, a model a bench would reuse (``model_info``) that was fitted on another
    generator, space or picture than ``store``'s: its manifest is read without running the file."""
    if model_info(out, name, model_key) is not None:
        path = out / "models" / f"{name}.joblib"
        refuse_foreign_model(path, read_manifest(path), store)


def fit_or_load(store: Store, gen, out: Path, name: str, model_key, method: str, input: str, model, progress: bool) -> tuple[Inverter, dict]:
    """The model ``model_info`` found (``model``), loaded; else a new fit, saved with its sidecar.

    The caller counts it as reused when it passed a ``model``, as fitted otherwise.
    """
    path = out / "models" / f"{name}.joblib"
    if model is not None:
        log.info("%s: reusing the fitted model %s", name, path)
        inv = load(path)
        refuse_foreign_model(path, inv.manifest(), store)  # what the file holds, not only what its manifest says
        return inv, model
    log.info("%s: fitting on %s", name, store.location)
    # settings that do not change the model, so they are not part of its key (UNKEYED): progress bars,
    # and a checkpoint from which an interrupted neural fit resumes
    overrides = dict(model_key["overrides"])
    known = build_method(method).get_params()
    ckpt = out / "models" / f"{name}.ckpt"
    if "progress" in known and "progress" not in overrides:
        overrides["progress"] = progress
    if "checkpoint" in known and "checkpoint" not in overrides:
        overrides["checkpoint"] = str(ckpt)
    t0 = time.perf_counter()
    inv = fit_inverter(store, method, input, overrides=overrides, generator=gen, progress=progress)
    wall = time.perf_counter() - t0
    inv.save(path)
    ckpt.unlink(missing_ok=True)  # the saved model supersedes it
    model = {
        "key": model_key,
        "fit_s": float(inv.validation.get("fit_s", wall)),
        "fit_wall_s": round(wall, 3),
        "model_mb": round(path.stat().st_size / 1e6, 3),
        "validation": inv.validation,
        "training": inv.training,  # the data wait and the clips rendered, for fits that record them
    }
    write_json(out / "models" / f"{name}.json", model)
    return inv, model
