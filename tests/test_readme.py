"""Every code block of the README runs, as a new user would run it, on a tiny store.

Blocks run in order in one empty folder: ``# mysynth.py`` blocks are written
to that file, other Python blocks are executed, and every ``wavinv ...`` line of a
bash block goes through the command line with the sizes made small
(``SMALL``). A block that cannot run here is listed in ``NOT_RUN`` with the
reason; a new block must be one or the other, or this test fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest

from wavinv.cli import main

README = Path(__file__).parent.parent / "README.md"
BLOCK = re.compile(r"^[ \t]*```(\w*)[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)

# first line of a block -> why it does not run here
NOT_RUN = {
    "make demo": "builds a virtual environment and runs the whole suite; the demo itself runs in test_picture.py on a tiny store",
}
# what a README command asks for -> the same on a tiny store; each must occur in the README
SMALL = {
    "--n 20000": "--n 60",
    "--workers 2": "--workers 1",
    "--rerender 16": "--rerender 2",
    "--out bench-my": "--out bench-my --profile test --targets 2",
}


def blocks() -> list[tuple[str, str]]:
    return [(lang, textwrap.dedent(body)) for lang, body in BLOCK.findall(README.read_text())]


def first_line(body: str) -> str:
    return body.strip().splitlines()[0].strip()


def test_every_block_is_run_or_says_why_not():
    found = blocks()
    assert len(found) >= 7
    skipped = [b for _, b in found if any(first_line(b).startswith(k) for k in NOT_RUN)]
    assert len(skipped) == len(NOT_RUN), "a block listed in NOT_RUN is no longer in the README"
    for lang, body in found:
        assert lang in ("python", "bash") or any(first_line(body).startswith(k) for k in NOT_RUN), (lang, first_line(body))
    text = README.read_text()
    assert all(k in text for k in SMALL), [k for k in SMALL if k not in text]


def _run_line(line: str, used: set[str], folder: Path) -> None:
    for big, small in SMALL.items():
        if big in line:
            line = line.replace(big, small)
            used.add(big)
    argv = shlex.split(line, comments=True)
    assert argv[0] == "wavinv", line
    code = main(argv[1:] + (["-q"] if argv[1] in ("generate", "fit", "bench") else []))
    assert code == 0, line


@pytest.mark.slow
def test_the_readme_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    used: set[str] = set()
    ran = 0
    for lang, body in blocks():
        head = first_line(body)
        if any(head.startswith(k) for k in NOT_RUN):
            continue
        if lang == "python" and head.startswith("# mysynth.py"):
            with open(tmp_path / "mysynth.py", "a") as f:  # "continued" blocks add to the file
                f.write(body + "\n")
            for name in [m for m in sys.modules if m.startswith("wavinv_user_")]:
                del sys.modules[name]  # a new process would import the longer file afresh
        elif lang == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, "README.md", "exec"), {})
            if "print(" in body:
                assert "cutoff" in out.getvalue()  # candidates' parameters, by name
        else:
            for line in body.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    _run_line(line.strip(), used, tmp_path)
        ran += 1
    assert used == set(SMALL) and ran >= 5
    assert (tmp_path / "sound.wav").is_file() and (tmp_path / "my-knn.joblib").is_file()
    assert (tmp_path / "heard" / "candidate_1.wav").is_file()
    assert json.loads((tmp_path / "cands-pictured.json").read_text())["candidates"]

    # the store records where its generator is: it loads from any folder
    capsys.readouterr()
    assert main(["info", "--json", "data/my-20k"]) == 0
    spec = json.loads(capsys.readouterr().out)["generator"]["spec"]
    assert spec == f"{tmp_path / 'mysynth.py'}:gen"
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert main(["verify", "-q", "../data/my-20k", "--rerender", "2", "--generator", spec]) == 0
    assert main(["invert", "--model", "../my.joblib", "--generator", spec, "--target", "../sound.wav", "--out", "c.json", "--no-chance"]) == 0
    capsys.readouterr()
    assert main(["invert", "--model", "../my.joblib", "--generator", "mysynth.py:gen", "--target", "../sound.wav", "--out", "c.json"]) == 2
    err = capsys.readouterr().err
    assert "generator file not found: mysynth.py" in err and spec in err and err.count("\n") == 1
    # the user's own picture: 128 x 128, floored at -80 dB
    capsys.readouterr()
    assert main(["info", "../data/my-pictured"]) == 0
    assert "the generator's own spectrogram function (mysynth): 128x128" in capsys.readouterr().out
