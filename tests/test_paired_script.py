"""benchmarks/paired.py: paired differences between rows of a finished run, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchscripts import script

paired = script("paired.py")


def _run(tmp: Path, a: list[float], b: list[float], ids=(3, 5, 8)) -> Path:
    (tmp / "evals").mkdir(parents=True)
    (tmp / "results.json").write_text(json.dumps({"meta": {"target_ids": list(ids), "settings": {"seed": 0}}}))
    for name, values in (("mine-spectrogram", a), ("theirs-spectrogram", b)):
        rows = {str(i): {"lsd_db_best": v, "lsd_db_median": v + 1.0} for i, v in zip(ids, values)}
        (tmp / "evals" / f"{name}.json").write_text(json.dumps({"targets": rows}))
    return tmp


def test_it_prints_the_mean_difference_and_the_wins(tmp_path):
    out = _run(tmp_path / "run", [1.0, 2.0, 3.0], [2.0, 2.5, 2.0])
    res = paired(str(out), "mine-spectrogram", "theirs-spectrogram")
    assert res.returncode == 0, res.stderr
    assert "lsd_db_best -0.17" in res.stdout and "(wins 2/3)" in res.stdout


@pytest.mark.parametrize(
    "setup, row, message",
    [
        ("none", "mine-spectrogram", "no finished bench run"),
        ("garbled", "mine-spectrogram", "cannot be read as a bench run"),
        ("run", "nothing-spectrogram", "no such row"),
        ("partial", "mine-spectrogram", "have no result"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, setup, row, message):
    out = tmp_path / "run"
    if setup == "none":
        out.mkdir()
    elif setup == "garbled":
        _run(out, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        (out / "results.json").write_text("{not json")
    else:
        _run(out, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        if setup == "partial":
            (out / "results.json").write_text(json.dumps({"meta": {"target_ids": [3, 5, 8, 13], "settings": {"seed": 0}}}))
    res = paired(str(out), row, "theirs-spectrogram")
    err = res.stderr.strip()
    assert res.returncode == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("paired.py: ")  # the line names the script that refused
