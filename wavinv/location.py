"""Where a store lives: a local directory, or any fsspec URL that zarr can open.

``Location("data/s")`` and ``Location("file:///abs/s")`` are local directories:
stores there are created atomically (built aside, then renamed into place) and
locked while written. ``Location("s3://bucket/s")``, ``"gs://..."``,
``"memory://..."`` and other fsspec URLs go through fsspec (install the
protocol's package, e.g. ``s3fs``): object stores have neither atomic renames
nor locks, so a URL store is created in place, its metadata written last, and
only one ``generate`` may write it at a time. Keys are ``/``-separated paths
below the location (``"zarr.json"``, ``"waveform/c/0/0"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import StoreError

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name


class Location:
    """A store's place: ``str()`` gives it back as the user wrote it (a path or a URL)."""

    def __init__(self, where: "str | os.PathLike | Location"):
        if isinstance(where, Location):
            where = where.url
        text = os.fspath(where)
        self.local: Path | None = None
        if "://" not in text or text.startswith("file://"):
            self.local = Path(text.removeprefix("file://"))
            self.url = str(self.local)
            return
        try:
            import fsspec

            self._fs, self._root = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as e:  # unknown protocol, or its package is missing
            raise StoreError(f"{text}: cannot open this URL ({e})") from None
        self.url = text.rstrip("/")

    # -- what it is ---------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.local is not None

    @property
    def protocol(self) -> str:
        return "file" if self.local is not None else self.url.partition("://")[0]

    @property
    def name(self) -> str:
        return self.local.name if self.local is not None else self.url.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    def zarr_store(self) -> str:
        """What ``zarr.open_group(store=...)`` takes: the path, or the URL (zarr opens it with fsspec)."""
        return self.url

    # -- reading ------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return f"{self._root}/{key}" if key else self._root

    def exists(self, key: str = "") -> bool:
        if self.local is not None:
            return (self.local / key).exists() if key else self.local.exists()
        return bool(self._fs.exists(self._key(key)))

    def is_empty(self) -> bool:
        """Nothing there yet: no such directory, or an empty one."""
        if self.local is not None:
            return not self.local.exists() or (self.local.is_dir() and not any(self.local.iterdir()))
        root = self._key("")
        return not self._fs.exists(root) or (self._fs.isdir(root) and not self._fs.ls(root))

    def read_text(self, key: str) -> str:
        """The text of ``key``; ``OSError`` when it cannot be read."""
        if self.local is not None:
            return (self.local / key).read_text()
        try:
            return self._fs.cat_file(self._key(key)).decode()
        except FileNotFoundError:
            raise
        except Exception as e:  # fsspec backends raise their own errors for network trouble
            raise OSError(f"{self.url}/{key}: {e}") from e

    def find(self, suffix: str = "") -> list[str]:
        """Keys of every file below the location whose name ends with ``suffix``."""
        if self.local is not None:
            if not self.local.is_dir():
                return []
            return sorted(p.relative_to(self.local).as_posix() for p in self.local.rglob(f"*{suffix}") if p.is_file())
        root = self._key("")
        return sorted(k[len(root) + 1 :] for k in self._fs.find(root) if k.endswith(suffix))

    def links(self) -> list[str]:
        """Keys of the symbolic links below a local location (URL stores have none). Never followed."""
        if self.local is None or not self.local.is_dir():
            return []
        out = []
        for top, dirs, files in os.walk(self.local, followlinks=False):
            for name in dirs + files:
                if os.path.islink(os.path.join(top, name)):
                    out.append(Path(top, name).relative_to(self.local).as_posix())
        return sorted(out)

    def nbytes(self) -> int:
        """Bytes stored below the location."""
        if self.local is not None:
            return sum(f.stat().st_size for f in self.local.rglob("*") if f.is_file())
        return int(self._fs.du(self._key("")))

    def remove(self, key: str) -> None:
        """Delete one file (no error when it is already gone)."""
        if self.local is not None:
            (self.local / key).unlink(missing_ok=True)
        elif self._fs.exists(self._key(key)):
            self._fs.rm_file(self._key(key))
