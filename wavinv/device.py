"""Where torch code runs: the device (``"auto"``: CUDA when present) and the number of CPU threads."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from .errors import InputError
from .limits import int_arg

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"``/``None``: ``default_device()``; otherwise ``torch.device(device)``, refused when it is not here."""
    if device is None or device == "auto":
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: leave torch's setting), then restore it."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int_arg("n_threads", n, 1))
    try:
        yield
    finally:
        torch.set_num_threads(before)
