"""Running a ``benchmarks/`` script as a user does, and the toy models and targets its tests read."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOY = f"{ROOT / 'tests' / 'toygen.py'}:toy"


def script(name: str, *leading: str) -> Callable[..., subprocess.CompletedProcess]:
    """A function running ``benchmarks/NAME`` with ``leading`` and its own arguments, output captured."""

    def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *leading, *args], cwd=cwd, capture_output=True, text=True)

    return run


def toy_models(folder: Path, n: int, proxy: dict | None = None) -> Path:
    """``folder`` holding a knn model (``knn.joblib``) on ``n`` toy clips, a proxy fitted with the
    ``proxy`` overrides when given (``proxy.joblib``), and a results.json naming two of the store's
    test clips as a bench run's targets."""
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter

    store = generate(folder / "store", TOY, n=n, seed=0, progress=False)
    fit_inverter(store, "knn", "spectrogram", overrides={"n_neighbors": 4, "n_components": 4}).save(folder / "knn.joblib")
    if proxy is not None:
        fit_inverter(store, "proxy", "spectrogram", overrides=proxy).save(folder / "proxy.joblib")
    ids = [int(i) for i in store.ids("test")[:2]]
    (folder / "results.json").write_text(json.dumps({"meta": {"target_ids": ids}}))
    return folder
