"""Where the numbers come from: the machine, the code's version, the command that reproduces a run, and the run's record of all that (``meta``)."""

from __future__ import annotations

import platform
import shlex
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..limits import cpu_count
from ..picture import picture_label
from ..store import Store
from .settings import Settings, pairs_of
from .stats import LEVEL, N_BOOT
from .targets import BenchTargets

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, torch device and the code version the numbers come from."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    cores = cpu_count()
    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    return {
        "cpu": cpu,
        "cores": cores,
        "ram_gib": ram,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "device": device,
        "wavinv": __version__,
        "git": _git_commit(),
    }


def _git_commit() -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]  # wavinv/bench/provenance.py -> the checkout
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        # --no-optional-locks: only read, never refresh the index
        status = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def command_line(store: Store, out: Path, s: Settings, generator: str | None) -> str:
    """The ``wavinv bench`` command that reproduces this run with every setting spelled out."""
    args = ["wavinv", "bench", "--store", str(store.location), "--out", str(out), "--profile", s.profile]
    args += ["--methods", ",".join(s.methods), "--inputs", ",".join(s.inputs)]
    args += ["--targets", str(s.targets), "--k", str(s.k), "--draws", str(s.draws), "--samples", str(s.samples), "--seed", str(s.seed)]
    if s.refine:
        args += ["--refine", str(s.refine), "--budgets", ",".join(map(str, s.budgets)), "--screen-factor", str(s.screen_factor)]
    if s.gradient:
        args += ["--gradient", str(s.gradient)]
    if s.targets_from != "test":
        args += ["--targets-from", s.targets_from]
    if s.target_noise_seed is not None:
        args += ["--target-noise-seed", str(s.target_noise_seed)]
    if generator:
        args += ["--generator", generator]
    return shlex.join(args)


def run_meta(store: Store, out: Path, s: Settings, targets: BenchTargets, floor: dict[str, Any], evals: dict, t_start: float, command: str) -> dict[str, Any]:
    """The run's provenance as ``results.json`` records it under ``meta`` (in this key order).

    ``floor`` is the floor's probe and decision (``wavinv.floor.probe_floor``).

    ``wall_s`` is this run's time since ``t_start``; the fit and invert totals
    are summed over every run that contributed (a resumed bench reuses earlier work).
    """
    return {
        "title": f"wavinv benchmark: {store.generator['name']} v{store.generator['version']}",
        "command": command,
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "store": {
            "path": str(store.location),
            "fingerprint": store.fingerprint,
            "generator": f"{store.generator['name']} v{store.generator['version']}",
            "n": store.n,
            "n_train": int(len(store.split_indices("train"))),
            "n_test": int(len(store.split_indices("test"))),
            "seed": store.seed,
            "picture": picture_label(store.frontend_config),
        },
        "settings": {
            "profile": s.profile,
            "methods": s.methods,
            "inputs": s.inputs,
            "targets": int(len(targets.ids)),
            "targets_from": s.targets_from,
            "target_noise_seed": s.target_noise_seed,
            "k": s.k,
            "draws": s.draws,
            "samples": s.samples,
            "seed": s.seed,
            "refine": s.refine,
            "gradient": s.gradient,
            "screen_factor": s.screen_factor,
            "budgets": s.budgets,
            "bootstrap": {"resamples": N_BOOT, "level": LEVEL},
            "overrides": {f"{m}:{i}": s.overrides_for(m, i) for m, i in pairs_of(s) if s.overrides_for(m, i)},
        },
        "target_ids": [int(r) for r in targets.ids],
        "targets": targets.describe(),
        "floor": floor,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "fit_wall_s": round(sum(ev["model"].get("fit_wall_s", ev["model"]["fit_s"]) for ev in evals.values()), 1),
        "invert_wall_s": round(sum(r["invert_s"] for ev in evals.values() for r in ev["records"]), 1),
    }
