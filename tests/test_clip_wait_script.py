"""benchmarks/clip_wait.py: the wait on rendered clips, for either input, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchscripts import TOY, script

clip_wait = script("clip_wait.py", "-q")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    from wavinv.generate import generate

    path = tmp_path_factory.mktemp("wait") / "store"
    generate(path, TOY, n=64, seed=0, progress=False, waveforms=False)
    return path


@pytest.mark.parametrize("input", ["waveform", "spectrogram"])
def test_it_trains_on_rendered_clips_and_prints_the_wait(store, input):
    res = clip_wait("--store", str(store), "--generator", TOY, "--seconds", "0.5", "--render-workers", "1", "--input", input)
    assert res.returncode == 0, res.stderr
    assert f"clips ({input}s)" in res.stdout and "waited on clips:" in res.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seconds", "-5"], "--seconds must be a number of seconds > 0"),
        (["--seconds", "nan"], "--seconds must be a number of seconds > 0"),
        (["--method", "knn"], "not a neural method"),
        (["--method", "nope"], "nope"),
        (["--render-workers", "-1"], "render_workers must be >= 0"),
        (["--render-clips", "10"], "fewer than the 64 samples"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store, extra, message):
    res = clip_wait("--store", str(store), "--generator", TOY, *extra)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_missing_store_is_one_line_and_exit_2(tmp_path):
    res = clip_wait("--store", str(tmp_path / "none"))
    assert res.returncode == 2 and "no such store" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
