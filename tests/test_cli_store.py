"""``wavinv generate / verify / info``: exit codes, one-line errors, untouched stores, kill -9."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wavinv import open_store
from wavinv.cli import main
from wavinv.generate import generate

HERE = Path(__file__).parent
ROOT = HERE.parent


def spec(name: str) -> str:
    return f"{HERE / 'toygen.py'}:{name}"


def tree(path: Path) -> dict[str, str]:
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.rglob("*")) if f.is_file()}


def arrays(path: Path) -> dict[str, str]:
    return {k: v for k, v in tree(path).items() if k != "zarr.json"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "store"
    assert main(["generate", "--generator", spec("toy"), "--n", "40", "--out", str(out), "--chunk", "8", "--seed", "1", "-q"]) == 0
    return out


def test_generate_info_verify(store, capsys):
    code, out, err = run(capsys, "info", str(store))
    assert code == 0 and "toy v1" in out and "N=40" in out and "5 of 5 complete" in out and "stft 512x512" in out
    code, out, _ = run(capsys, "info", "--json", str(store))
    info = json.loads(out)
    assert code == 0 and info["n"] == 40 and info["seed"] == 1 and info["space"]["n_params"] == 3
    assert info["generator"]["spec"] == spec("toy") and info["frontend"]["n_samples"] == 1024
    # the recorded spec is a file: verify never imports it by itself
    code, _, err = run(capsys, "verify", "-q", str(store), "--rerender", "3", "--seed", "0")
    assert code == 2 and "name it with --generator SPEC" in err and err.count("\n") == 1
    code, out, _ = run(capsys, "verify", "-q", str(store), "--rerender", "3", "--seed", "0", "--generator", spec("toy"))
    assert code == 0 and "OK: 40 samples in 5 chunks" in out and "3 re-rendered samples match" in out
    # the same command again: already complete, nothing written
    before = tree(store)
    code, out, _ = run(capsys, "generate", "--generator", spec("toy"), "--n", "40", "--out", str(store), "--seed", "1")
    assert code == 0 and "complete" in out and tree(store) == before


BAD = [
    (["generate", "--generator", "nope", "--n", "40", "--seed", "1"], "unknown generator 'nope'"),
    (["generate", "--generator", spec("toy"), "--n", "0", "--seed", "1"], "argument --n: must be >= 1, got 0"),
    (["generate", "--generator", spec("other"), "--n", "40", "--seed", "1"], "was made by generator 'toy' v1"),
    (["generate", "--generator", spec("toy"), "--n", "40", "--seed", "2"], "was made with seed 1, not 2"),
    (["generate", "--generator", spec("toy"), "--n", "40", "--seed", "1", "--chunk", "4"], "chunks of 8 samples, not 4"),
    (["generate", "--generator", spec("nan"), "--n", "48", "--seed", "1"], "contains NaN or Inf"),
    (["generate", "--generator", spec("bad_shape"), "--n", "48", "--seed", "1"], "render returned shape (2, 1023)"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[m for _, m in BAD])
def test_refused_commands_print_one_line_and_leave_the_store(store, capsys, argv, message):
    before = tree(store)
    code, out, err = run(capsys, *argv, "--out", str(store), "-q")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("wavinv generate: error: ") and message in err, err
    assert tree(store) == before


def test_paths_that_are_not_stores(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "generate", "--generator", spec("toy"), "--n", "4", "--out", str(tmp_path / "file" / "s"))
    assert code == 2 and "cannot create" in err and err.count("\n") == 1
    for cmd in ("verify", "info"):
        code, _, err = run(capsys, cmd, str(tmp_path / "file"))
        assert code == 2 and "is not a wavinv store" in err and err.count("\n") == 1
        code, _, err = run(capsys, cmd, str(tmp_path / "missing"))
        assert code == 2 and "no such" in err
    assert (tmp_path / "file").read_text() == "x"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    code, _, err = run(capsys, "generate", "--generator", spec("toy"), "--n", "4", "--out", str(foreign))
    assert code == 2 and "is not a wavinv store" in err and [f.name for f in foreign.iterdir()] == ["mine.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run(capsys, "generate", "--generator", spec("toy"), "--n", "4", "--out", str(locked / "s"))
    assert code == 2 and "cannot create" in err and "ermission denied" in err and not list(locked.iterdir())


def test_verify_names_what_is_wrong(store, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    f = copy / "waveform" / "c" / "1" / "0"
    data = bytearray(f.read_bytes())
    data[-9] ^= 1
    f.write_bytes(bytes(data))
    (copy / "params" / "c" / "3" / "0").unlink()
    code, out, _ = run(capsys, "verify", "-q", str(copy))
    assert code == 1
    assert "PROBLEM: chunk 1 (samples 8..15): waveform chunk file waveform/c/1/0 is damaged" in out
    assert "PROBLEM: chunk 3 (samples 24..31): params chunk file params/c/3/0 is missing" in out
    assert "NOT WHOLE (2 problems)" in out


def children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if d.name.isdigit() and int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_kill_9_loses_only_chunks_in_flight(tmp_path):
    """kill -9 a real two-worker run mid-way: its workers exit too, and the next run ends byte-identical."""
    ref = tmp_path / "ref"
    generate(ref, spec("toy"), 96, chunk=4, progress=False)
    out = tmp_path / "killed"
    # made here and grown by the subprocess, which then skips creating it (and importing torch for the frontend)
    generate(out, spec("toy"), 8, chunk=4, progress=False)
    env = dict(os.environ, TOYGEN_DELAY="0.05", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "wavinv", "generate", "--generator", spec("slow"), "--n", "96", "--chunk", "4", "--workers", "2", "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=subprocess.PIPE)
    records = out / "complete" / "c"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(records.iterdir())) >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    workers = children(proc.pid)
    proc.kill()  # SIGKILL to the main process only, as `kill -9 PID` does
    proc.wait()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(map(alive, workers)):
            time.sleep(0.05)
        assert not any(map(alive, workers)), "worker processes outlived the killed run"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    s = open_store(out)
    done = int(s.completed().sum())
    assert 5 <= done < s.n_chunks
    # the slow generator is the same generator (identity), so it resumes
    generate(out, spec("toy"), 96, progress=False)
    assert arrays(out) == arrays(ref)
    assert not list(out.rglob("*.partial"))
    np.testing.assert_array_equal(open_store(out).waveforms()[:], open_store(ref).waveforms()[:])
