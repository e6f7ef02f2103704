"""Where the numbers come from: the machine, the code's version and the command that reproduces a run."""

from __future__ import annotations

import platform
import shlex
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__
from ..limits import cpu_count
from ..store import Store
from .settings import Settings


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
        args += ["--refine", str(s.refine)]
    if generator:
        args += ["--generator", generator]
    return shlex.join(args)
