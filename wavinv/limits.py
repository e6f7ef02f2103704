"""Sizes and ranges checked before any work: integer arguments, and what the machine can hold (cores, memory, disk).

Limits come from the machine (physical and available memory from ``os.sysconf``
or ``/proc/meminfo``, free disk space from ``os.statvfs``), never from fixed
numbers, so a request that cannot fit is refused up front with what it needs
and what there is, instead of failing with ``MemoryError`` or a full disk later.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


def int_arg(name: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; ``InputError`` naming ``name`` otherwise (bools are not ints).

    The one integer check of the package: arguments, settings and hyper-parameters all go through it.
    """
    bound = f">= {low}" if high is None else f"in {low}..{high}"
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        out = operator.index(value)
    except TypeError:
        raise InputError(f"{name} must be an integer {bound}, got {value!r}") from None
    if out < low or (high is not None and out > high):
        raise InputError(f"{name} must be {bound}, got {value!r}")
    return int(out)


def positive_int(name: str, value: Any) -> int:
    """``int_arg(name, value, 1)``: a count, size or number of threads."""
    return int_arg(name, value, 1)


def budget_list(value: Any, name: str = "budgets") -> list[int]:
    """Render budgets: ``"16,64,256"`` or a sequence of ints, increasing, each >= 1, at least one.

    ``InputError`` naming ``name`` for an empty, unsorted or repeating list, or an item that is not
    a positive integer (``"16.5"``, ``"x"``, ``0``, a bool).
    """
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        raise InputError(f"{name} must be a comma-separated list of render counts, got {value!r}") from None
    if not items or any(isinstance(i, str) and not i for i in items):
        raise InputError(f"{name} must list at least one render count, without empty items, got {value!r}")
    out = []
    for item in items:
        if isinstance(item, str):
            try:
                item = int(item, 10)
            except ValueError:
                raise InputError(f"{name} must be whole numbers of renders, got {item!r} in {value!r}") from None
        out.append(int_arg(f"each of {name}", item, 1))
    if any(b <= a for a, b in zip(out, out[1:])):
        raise InputError(f"{name} must increase, without repeats, got {value!r}")
    return out


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask where the OS has one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def total_memory() -> int:
    """Physical memory of the machine, in bytes."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # no sysconf: assume the ceiling of what this process can address
        return 1 << 47


def available_memory() -> int:
    """Memory a new allocation can get now without swapping, in bytes (MemAvailable where known)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return total_memory()


def free_disk(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the filesystem that holds (or would hold) ``path``; None when unknown."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except (OSError, AttributeError):
        return None
    return int(st.f_bavail) * int(st.f_frsize)


def require_memory(nbytes: float, what: str, total: bool = False) -> None:
    """Refuse ``what`` when it needs more than the available (or, with ``total``, the physical) memory."""
    have = total_memory() if total else available_memory()
    if nbytes > have:
        kind = "memory in all" if total else "memory available"
        raise InputError(f"{what} needs about {human_bytes(nbytes)} of memory; this machine has {human_bytes(have)} of {kind}")


def require_disk(path: str | os.PathLike, nbytes: float, what: str) -> None:
    """Refuse ``what`` when it needs more than the free space on ``path``'s filesystem."""
    have = free_disk(path)
    if have is not None and nbytes > have:
        raise InputError(f"{what} needs about {human_bytes(nbytes)} of disk; {human_bytes(have)} is free there")
