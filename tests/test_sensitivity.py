"""Each parameter's sensitivity: how far the sound moves when it alone is redrawn; measured at fit time within its
caps, shown by ``wavinv info`` and the bench's "Which parameters are learnt"."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from wavinv import FunctionGenerator, InputError, Param, ParamSpace
from wavinv.cli import main
from wavinv.frontend import Spectrogram, frontend_config
from wavinv.generate import generate
from wavinv.pictures import store_picture
from wavinv.sensitivity import MAX_RENDERS, MAX_ROWS, parameter_sensitivity

TOY = str(Path(__file__).parent / "toygen.py")
N_SAMPLES = 1024


def tone(n_params: int = 3, renders: list | None = None) -> FunctionGenerator:
    """A tone whose pitch and level matter and whose other parameters (``idle0``, ...) do nothing."""
    space = ParamSpace([Param("pitch", 100.0, 2000.0, scale="log"), Param("level", 0.05, 1.0)]
                       + [Param(f"idle{j}", 0.0, 1.0) for j in range(n_params - 2)])

    def render(params: np.ndarray) -> np.ndarray:
        if renders is not None:
            renders.append(len(params))
        t = np.arange(N_SAMPLES) / 8000.0
        return (params[:, 1:2] * np.sin(2 * np.pi * params[:, 0:1] * t)).astype(np.float32)

    return FunctionGenerator(space, render, sample_rate=8000, n_samples=N_SAMPLES, name="tone", version="1")


def picture() -> Spectrogram:
    """A small picture (64 x 64): the measurement is the same on any."""
    return Spectrogram.from_config(frontend_config(sample_rate=8000, n_samples=N_SAMPLES, n_freq=64, n_frames=64))


def test_a_parameter_that_does_nothing_scores_zero_and_one_that_matters_scores_high():
    gen = tone()
    rows = np.random.default_rng(0).random((40, 3))
    measured = parameter_sensitivity(gen, rows, picture(), step=8, random_state=0)
    db = measured["sensitivity_db"]
    assert db["idle0"] == 0.0  # the same clip: the same picture
    assert db["pitch"] > 10.0 and db["level"] > 1.0 and db["pitch"] > db["level"]
    assert measured["rows"] == 40 and measured["renders"] == 40 * 4 and measured["frames"] == "every 8th frame"


@pytest.mark.parametrize("n_params, n_rows, rows_used", [(3, 200, MAX_ROWS), (100, 200, MAX_RENDERS // 101), (10, 7, 7)])
def test_the_caps_on_rows_and_renders_hold(n_params, n_rows, rows_used):
    renders: list[int] = []
    gen = tone(n_params, renders)
    measured = parameter_sensitivity(gen, np.random.default_rng(0).random((n_rows, n_params)), picture(), step=8)
    assert measured["rows"] == rows_used and sum(renders) == measured["renders"] == rows_used * (n_params + 1)
    assert sum(renders) <= MAX_RENDERS and max(renders) <= 64  # a few parameters' redraws per call
    with pytest.raises(InputError, match=f"over the cap of {n_params}$"):
        parameter_sensitivity(gen, np.random.default_rng(0).random((4, n_params)), picture(), step=8, max_renders=n_params)


def test_the_same_rows_and_seed_give_the_same_numbers():
    rows = np.random.default_rng(1).random((16, 5))
    first, again = (parameter_sensitivity(tone(5), rows, picture(), step=8, random_state=3) for _ in range(2))
    assert first == again
    assert parameter_sensitivity(tone(5), rows, picture(), step=8, random_state=4)["sensitivity_db"] != first["sensitivity_db"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sens") / "store", f"{TOY}:toy", n=96, seed=0, progress=False)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_fit_records_it_and_info_shows_it_most_sensitive_first(store, tmp_path, capsys):
    code, out, _ = run(capsys, "fit", "--store", store.location.local, "--method", "knn", "--generator", f"{TOY}:toy", "--set", "n_components=4",
                       "--out", tmp_path / "m.joblib", "-q")
    assert code == 0 and "note:" not in out
    code, out, _ = run(capsys, "info", "--json", tmp_path / "m.joblib")
    validation = json.loads(out)["validation"]
    learnt, how = validation["learnt"], validation["sensitivity"]
    assert set(learnt) == {"freq", "amp", "wave"} and all(isinstance(r["sensitivity_db"], float) for r in learnt.values())
    assert how == {"rows": validation["n_val"], "renders": validation["n_val"] * 4, "frames": "every 8th frame", "seed": 0}
    code, out, _ = run(capsys, "info", tmp_path / "m.joblib")
    table = out.split("learnt      ", 1)[1].splitlines()[1:5]
    assert table[0].split() == ["parameter", "posterior", "prior", "ratio", "sensitivity", "dB"]
    shown = [line.split() for line in table[1:]]
    assert [row[0] for row in shown] == sorted(learnt, key=lambda n: -learnt[n]["sensitivity_db"])
    assert [float(row[-1]) for row in shown] == [round(learnt[row[0]]["sensitivity_db"], 2) for row in shown]
    # what the fit recorded is the measurement on the validation clips, on the store's picture, with the fit's seed
    fresh = parameter_sensitivity(store.attach(f"{TOY}:toy"), store.params_unit("val")[: validation["n_val"]], store_picture(store), 8, 0)
    assert fresh["sensitivity_db"] == {name: r["sensitivity_db"] for name, r in learnt.items()}


def test_without_the_generator_the_fit_says_it_skipped_the_measurement(store, tmp_path, capsys):
    code, out, _ = run(capsys, "fit", "--store", store.location.local, "--method", "prior", "--out", tmp_path / "m.joblib", "-q")
    assert code == 0 and "note: each parameter's sensitivity was not measured: its generator was not named" in out
    code, out, _ = run(capsys, "info", tmp_path / "m.joblib")
    assert "sensitivity not measured: its generator was not named (wavinv fit --generator SPEC measures it)" in out


def test_the_bench_says_which_parameters_are_learnt(store, tmp_path, capsys):
    code, _, err = run(capsys, "bench", "--store", store.location.local, "--generator", f"{TOY}:toy", "--profile", "test", "--methods", "knn",
                       "--inputs", "spectrogram", "--targets", "2", "--out", tmp_path / "bench", "-q")
    assert code == 0, err
    md = (tmp_path / "bench" / "results.md").read_text()
    section = md.split("## Which parameters are learnt", 1)[1].split("\n## ", 1)[0]
    assert "### knn / spectrogram" in section and "### prior" not in section and "[learnt.csv](learnt.csv)" in section
    with open(tmp_path / "bench" / "learnt.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["input"]) for r in rows] == [("knn", "spectrogram")] * 3
    sensitivity = [float(r["sensitivity_db"]) for r in rows]
    assert sensitivity == sorted(sensitivity, reverse=True)  # the most sensitive first
    for r in rows:
        assert f"| {r['parameter']} | {float(r['sensitivity_db']):.2f} | {float(r['posterior']):.3f} | {float(r['prior']):.3f} |" in section
