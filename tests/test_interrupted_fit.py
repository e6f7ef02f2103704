"""``wavinv fit`` stopped by Ctrl-C (SIGINT) or a batch scheduler (SIGTERM) while it trains: one line on stderr,
exit 130 or 143, the earlier model file byte-identical and no temporary file anywhere."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wavinv.cli import main

ROOT = Path(__file__).resolve().parent.parent
# the toy picture that touches a marker file, then sleeps, as a fit starts reading its training pictures
MARKED = f"{ROOT / 'tests' / 'toygen.py'}:marked"


def files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden temporaries too) and the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A store of the marked toy and a model already fitted on it: the file an interrupted fit must leave alone."""
    root = tmp_path_factory.mktemp("interrupted")
    for argv in (["generate", "--generator", MARKED, "--n", "64", "--out", root / "store", "-q"],
                 ["fit", "--store", root / "store", "--method", "knn", "--generator", MARKED, "--out", root / "model.joblib", "-q"]):
        assert main([str(a) for a in argv]) == 0
    return root


@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "wavinv fit: interrupted"), (signal.SIGTERM, 143, "wavinv fit: terminated (SIGTERM)")])
def test_a_fit_stopped_while_it_trains_leaves_the_earlier_model_whole(work, tmp_path, sig, code, line):
    before = files(work)
    marker = tmp_path / "training"
    # the marked picture sleeps a minute once training reads its pictures: only the signal ends the fit in time
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOYGEN_MARKER=str(marker), TOYGEN_DELAY="60")
    cmd = [sys.executable, "-m", "wavinv", "fit", "--store", str(work / "store"), "--method", "knn", "--generator", MARKED,
           "--out", str(work / "model.joblib"), "-q"]
    # SIGINT as a terminal sends it, whatever the test runner's own handling of it
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists() and proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=50)  # well before the picture's minute of sleep is over
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code and err == line + "\n" and out == "", (proc.returncode, out, err)
    assert files(work) == before  # the earlier model byte-identical, the store untouched, no temporary file
