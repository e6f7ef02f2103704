"""Writes that fail: a file-size limit (RLIMIT_FSIZE, what ``ulimit -f`` sets), a read-only folder.

Every command that writes runs in a subprocess (the limit and a failure must not
touch pytest's own process) and must end in one line on stderr and exit status 2,
with no traceback, no partial file, no temporary file and no new folder: the
workspace is byte-for-byte what it was. CPython ignores SIGXFSZ, so a write past
the limit fails with EFBIG instead of killing the process.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wavinv.cli import main

HERE = Path(__file__).parent
TOY = f"{HERE / 'toygen.py'}:toy"
LIMIT = 256  # bytes: less than any output below, more than nothing


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """store/ (40 toy clips), model.joblib, target.wav, cands.json (an invert's output), old/ (earlier outputs)."""
    root = tmp_path_factory.mktemp("writes") / "ws"
    root.mkdir()
    ws = str(root)
    assert main(["generate", "--generator", TOY, "--n", "40", "--chunk", "8", "--out", f"{ws}/store", "-q"]) == 0
    assert main(["fit", "--store", f"{ws}/store", "--method", "prior", "--input", "waveform", "--out", f"{ws}/model.joblib", "-q"]) == 0
    from wavinv import open_store
    from wavinv.targets import save_wav

    store = open_store(root / "store")
    save_wav(store.waveforms()[int(store.split_indices("test")[0])], root / "target.wav", store.sample_rate)
    assert main(INVERT(ws) + ["--out", f"{ws}/cands.json"]) == 0
    (root / "old").mkdir()
    for name in ("candidate_1.wav", "candidates.png", "c.json", "c.png", "m.joblib", "s.png", "s.npy"):
        (root / "old" / name).write_bytes(b"an earlier output, to be kept whole")
    return root


@pytest.fixture
def ws(pristine, tmp_path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(pristine, dest)
    return dest


def INVERT(ws: str) -> list[str]:
    return ["invert", "--model", f"{ws}/model.joblib", "--generator", TOY, "--n", "2", "--draws", "4", "--target", f"{ws}/target.wav"]


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs:
            out[str(Path(top, name).relative_to(root))] = "dir"
        for name in files:
            out[str(Path(top, name).relative_to(root))] = hashlib.sha256(Path(top, name).read_bytes()).hexdigest()
    return out


def wavinv(argv: list[str], file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = dict(os.environ, PYTHONPATH=str(HERE.parent), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "wavinv", *argv], env=env, capture_output=True, text=True, timeout=1200,  # a guard against a hang only
        preexec_fn=None if file_size_limit is None else limit,
    )


def refused(ws: Path, argv: list[str], why: str, file_size_limit: int | None = None) -> None:
    before = snapshot(ws)
    proc = wavinv([a.replace("{ws}", str(ws)) for a in argv], file_size_limit)
    err = proc.stderr
    assert proc.returncode == 2 and err.count("\n") == 1 and why in err and "Traceback" not in err, err
    assert snapshot(ws) == before  # no partial file, no temporary file, no folder; earlier outputs whole


OUTPUTS = {
    "render-new-folder": ["render", "{ws}/cands.json", "--generator", TOY, "--out", "{ws}/new/deeper"],
    "render-over-earlier-files": ["render", "{ws}/cands.json", "--generator", TOY, "--out", "{ws}/old"],
    "invert-json-and-plot": INVERT("{ws}") + ["--out", "{ws}/old/c.json", "--plot", "{ws}/old/c.png"],
    "fit-model": ["fit", "--store", "{ws}/store", "--method", "prior", "--input", "waveform", "--out", "{ws}/old/m.joblib", "-q"],
    "spectrogram-png": ["spectrogram", "{ws}/target.wav", "{ws}/old/s.png", "--generator", TOY],
    "spectrogram-npy": ["spectrogram", "{ws}/target.wav", "{ws}/old/s.npy", "--generator", TOY],
    "generate-store": ["generate", "--generator", TOY, "--n", "16", "--out", "{ws}/s2", "-q"],
    "demo": ["demo", "--out", "{ws}/demo", "--n", "40", "--method", "prior", "--refine", "0", "-q"],
}


@pytest.mark.parametrize("argv", OUTPUTS.values(), ids=OUTPUTS.keys())
def test_a_file_size_limit_is_one_line_and_leaves_nothing(ws, argv):
    refused(ws, argv, "File too large", file_size_limit=LIMIT)


def test_the_render_error_names_the_file_not_its_temporary(ws):
    proc = wavinv(["render", str(ws / "cands.json"), "--generator", TOY, "--out", str(ws / "r")], file_size_limit=LIMIT)
    assert proc.returncode == 2 and f"cannot write {ws / 'r' / 'candidate_1.wav'}: File too large" in proc.stderr, proc.stderr


@pytest.fixture
def readonly(ws):
    """ws/ro/: unwritable (chmod for a user; for root, who ignores modes, the immutable attribute)."""
    ro = ws / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here (root ignores folder modes)")
        yield ro
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    else:
        ro.chmod(0o500)
        yield ro
        ro.chmod(0o700)


READONLY = {
    "render-into-it": ["render", "{ws}/cands.json", "--generator", TOY, "--out", "{ws}/ro"],
    "render-below-it": ["render", "{ws}/cands.json", "--generator", TOY, "--out", "{ws}/ro/new"],
    "spectrogram": ["spectrogram", "{ws}/target.wav", "{ws}/ro/s.png", "--generator", TOY],
    "invert-plot": INVERT("{ws}") + ["--out", "{ws}/c.json", "--plot", "{ws}/ro/c.png"],
    "fit": ["fit", "--store", "{ws}/store", "--method", "prior", "--input", "waveform", "--out", "{ws}/ro/m.joblib", "-q"],
    "demo": ["demo", "--out", "{ws}/ro/demo", "--n", "40", "--method", "prior", "--refine", "0", "-q"],
}


@pytest.mark.parametrize("argv", READONLY.values(), ids=READONLY.keys())
def test_a_read_only_folder_is_one_line_and_leaves_nothing(ws, readonly, argv):
    refused(ws, argv, str(readonly))
