"""What can be known of a model file without running it: its SHA-256 and its manifest.

A model file (``Inverter.save``) is a joblib pickle of ``{"manifest": {...},
"inverter": Inverter}``. Unpickling runs whatever code the file names, so
``wavinv.load`` is only for files you made or trust; ``load(path, sha256=HEX)``
refuses a file whose SHA-256 is not the one you pinned before anything is
unpickled. ``read_manifest`` reads the manifest -- plain dicts, strings and
numbers, stored first -- with an unpickler that refuses every class and
function, so it never runs code from the file: ``wavinv info`` uses it.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import zlib
from pathlib import Path
from typing import Any

from .errors import InputError, ModelError
from .methods import INPUTS
from .schema import manifest_problem

__all__ = ["FORMAT", "FORMAT_VERSION", "file_sha256", "pinned_sha256", "read_bytes_pinned", "read_manifest"]

FORMAT = "wavinv-model"
FORMAT_VERSION = 1
# the manifest is at the start of the pickle: this much decompressed is far more than it needs
_MANIFEST_BYTES = 4 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def pinned_sha256(sha256: str) -> str:
    """``sha256`` as 64 lowercase hex digits, or ``InputError``."""
    text = str(sha256).strip().lower()
    if not _HEX64.fullmatch(text):
        raise InputError(f"a SHA-256 is 64 hex digits, got {sha256!r}")
    return text


def read_bytes_pinned(path: str | Path, sha256: str) -> bytes:
    """The bytes of ``path`` when their SHA-256 is ``sha256``, else ``ModelError`` (nothing of it is used).

    The bytes checked are the bytes returned: a file replaced after the check cannot slip in.
    """
    expected = pinned_sha256(sha256)
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelError(f"{path}: its SHA-256 is {actual}, not the pinned {expected}: not loaded (a model file runs code when loaded)")
    return data


class _Refused(Exception):
    """Raised by ``_NoCode`` where the pickle names a class or function."""


class _NoCode(pickle.Unpickler):
    """An unpickler that builds only plain values: any class or function the pickle names stops it."""

    def find_class(self, module: str, name: str):
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        raise _Refused("a persistent id")


def _pickle_start(path: Path) -> bytes:
    """The first ``_MANIFEST_BYTES`` of the pickle in a joblib file (zlib-compressed, as ``Inverter.save`` writes, or plain)."""
    with open(path, "rb") as f:
        head = f.read(1)
        if head == b"\x80":  # a plain pickle (protocol 2 or later)
            return head + f.read(_MANIFEST_BYTES - 1)
        if head != b"\x78":  # joblib's zlib files start with a zlib header
            raise ModelError(f"{path}: not a wavinv model file (neither a zlib-compressed nor a plain pickle)")
        f.seek(0)
        inflate, out = zlib.decompressobj(), bytearray()
        try:
            while len(out) < _MANIFEST_BYTES and (chunk := inflate.unconsumed_tail or f.read(1 << 16)):
                out += inflate.decompress(chunk, _MANIFEST_BYTES - len(out))
        except zlib.error as e:
            raise ModelError(f"{path}: not a wavinv model file (damaged compression: {e})") from None
    return bytes(out)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a saved model, read without running any code from the file.

    ``ModelError`` when the file holds no wavinv manifest before its first object.
    Only what the file says of itself: ``wavinv.load`` checks that the model matches it.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    reader = _NoCode(io.BytesIO(_pickle_start(path)))
    try:
        reader.load()
    except Exception:  # noqa: BLE001 -- _Refused at the first class (a model's Inverter, after its manifest), or not a pickle
        pass
    # the values built before the unpickler stopped; the manifest dict is complete once its items are set
    built = reader.memo.copy().values()
    manifest = next((v for v in built if isinstance(v, dict) and v.get("format") == FORMAT), None)
    if manifest is None:
        raise ModelError(f"{path}: not a wavinv model file (no wavinv manifest readable without running it)")
    problem = manifest_problem(manifest, FORMAT, FORMAT_VERSION, INPUTS)
    if problem:
        raise ModelError(f"{path}: damaged model file: {problem}")
    return manifest
