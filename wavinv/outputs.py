"""Writing the user's output files: never over an input, never half-written, no debris.

Overwrite policy (the README's trust model): an output may name a new file or an
existing regular file, which is replaced whole. It is refused, before any work,
when it is one of the command's inputs or lies inside an input directory (paths
compared after resolving links, and by inode), when it is a directory or another
non-regular file, or when its folder is missing or not writable.

Every file is written to a temporary file beside it, ``.NAME.PID-XXXXXXXX.tmp.EXT``,
and renamed into place only once all of a command's files are written
(``atomic_paths``), so a multi-file output (a JSON and its plot) appears whole or
not at all. A failure removes the temporary files; those of a killed run (its PID
gone) are removed by the next write to the same name. A write that fails (a full
disk, a file-size limit, a folder made read-only meanwhile) is an ``OutputError``
naming the file the user asked for, and a folder made for the outputs
(``new_folder``) is removed again.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Iterator, Mapping

from .errors import OutputError

__all__: list[str] = []  # internal: wavinv's own modules import what they need by name

def write_failed(path: "str | os.PathLike", e: OSError) -> OutputError:
    """The one-line error for an ``OSError`` while writing ``path`` (named as the user named it, not its temporary file)."""
    return OutputError(f"cannot write {_final_path(path)}: {e.strerror or e}")


_TEMP = re.compile(r"\.(.+)\.tmp-\d+-[0-9a-f]{8}(\.[^.]*)?")


def _final_path(path: "str | os.PathLike") -> Path:
    """The file a temporary file of ``atomic_paths`` stands for (itself when it is no such temporary file)."""
    path = Path(path)
    while match := _TEMP.fullmatch(path.name):  # a temporary of a temporary: a writer nested in atomic_paths
        path = path.with_name(match.group(1))
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def temp_name(name: str, tag: str) -> str:
    """``.NAME.TAG-PID-XXXXXXXX``: a hidden temporary name that says which process made it."""
    return f".{name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def remove_stale(parent: Path, name: str, tag: str, remove=None) -> None:
    """Remove the temporary files (or folders) ``temp_name(name, tag)`` left by processes that are gone."""
    prefix = f".{name}.{tag}-"
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid = entry.name[len(prefix) :].partition("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                (remove or os.unlink)(entry.path)


def _resolved(p: "str | os.PathLike") -> str:
    return os.path.realpath(os.path.abspath(p))


def _is_input(out: Path, inp: Path) -> bool:
    ro, ri = _resolved(out), _resolved(inp)
    if ro == ri or (os.path.isdir(ri) and ro.startswith(ri.rstrip(os.sep) + os.sep)):
        return True
    try:
        return out.exists() and inp.exists() and os.path.samefile(out, inp)  # hard links
    except OSError:
        return False


def _check_not_input(flag: str, out: Path, inputs: Mapping[str, "str | os.PathLike | None"]) -> None:
    for what, inp in inputs.items():
        if inp is not None and _is_input(out, Path(inp)):
            inside = "" if _resolved(out) == _resolved(inp) or not os.path.isdir(inp) else "inside "
            raise OutputError(f"{flag} {out} is {inside}the {what} {inp}: refusing to overwrite an input")


def _check_folder(flag: str, folder: Path) -> None:
    if not folder.is_dir():
        raise OutputError(f"{flag}: output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{flag}: output folder is not writable: {folder}")


def check_outputs(outputs: Mapping[str, "str | os.PathLike | None"], inputs: Mapping[str, "str | os.PathLike | None"]) -> None:
    """Refuse output files that are inputs, directories or unwritable, before any work.

    ``outputs`` and ``inputs`` map what the user called them (``"--out"``,
    ``"model"``) to paths; ``None`` entries are skipped.
    """
    seen: dict[str, str] = {}
    for flag, out in outputs.items():
        if out is None:
            continue
        out = Path(out)
        _check_not_input(flag, out, inputs)
        if out.is_dir():
            raise OutputError(f"{flag} {out} is a directory: name a file")
        if out.exists() and not out.is_file():
            raise OutputError(f"{flag} {out} exists and is not a regular file")
        _check_folder(flag, out.parent)
        real = _resolved(out)
        if real in seen:
            raise OutputError(f"{seen[real]} and {flag} name the same file {out}")
        seen[real] = flag


def check_output_dir(flag: str, out: "str | os.PathLike", inputs: Mapping[str, "str | os.PathLike | None"]) -> None:
    """Refuse an output folder that is (or is inside) an input, or that exists as something else."""
    out = Path(out)
    _check_not_input(flag, out, inputs)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{flag} {out} exists and is not a directory")
    parent = out if out.is_dir() else next((p for p in out.absolute().parents if p.exists()), Path("/"))
    if not parent.is_dir():
        raise OutputError(f"{flag} {out}: {parent} is not a directory")
    _check_folder(flag, parent)


@contextlib.contextmanager
def atomic_paths(*paths: "str | os.PathLike") -> Iterator[list[Path]]:
    """``with atomic_paths(a, b) as (ta, tb):`` write the temporaries; all replace their paths only on success.

    Any ``OSError`` (full disk, a folder made read-only meanwhile) becomes ``OutputError``;
    the temporaries are removed whatever happens.
    """
    paths = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for p in paths:
            _check_folder(str(p), p.parent)
            if p.is_dir():
                raise OutputError(f"{p} is a directory: name a file")
            remove_stale(p.parent, p.name, "tmp")
            tmp = p.parent / (temp_name(p.name, "tmp") + p.suffix)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # a plain open()'s permissions
            os.close(fd)
            tmps.append(tmp)
        yield tmps
        for tmp, p in zip(tmps, paths):
            os.replace(tmp, p)
    except OSError as e:
        named = {str(t): p for t, p in zip(tmps, paths)}
        raise write_failed(named.get(str(e.filename), paths[0] if len(paths) == 1 else ", ".join(map(str, paths))), e) from None
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def new_folder(path: "str | os.PathLike") -> Iterator[Path]:
    """``with new_folder(out):`` make ``out`` (and missing parents); those made are removed again if the block fails."""
    path = Path(path)
    made = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        yield path
    except BaseException:
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()  # only while empty
        raise


@contextlib.contextmanager
def atomic_path(path: "str | os.PathLike") -> Iterator[Path]:
    """``with atomic_path(out) as tmp:`` write to ``tmp``; it replaces ``out`` only on success."""
    with atomic_paths(path) as (tmp,):
        yield tmp
