"""The generator's own spectrogram: stores, fits, targets, ranking, render and bench use the user's picture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from wavinv import FunctionGenerator, load, open_store
from wavinv.cli import main
from wavinv.errors import GeneratorError, InputError, ModelError, RenderError, StoreError
from wavinv.frontend import Spectrogram, spectrogram
from wavinv.generate import generate
from wavinv.picture import GeneratorPicture, probe_clip
from wavinv.pictures import store_picture, store_spectrograms
from wavinv.targets import load_target, save_wav

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import toygen  # noqa: E402

SPEC = f"{HERE / 'toygen.py'}:pictured"
OTHER = f"{HERE / 'toygen.py'}:repictured"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A store of the pictured toy and a knn model on its pictures, made by the CLI from another folder."""
    root = tmp_path_factory.mktemp("picture")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(elsewhere)
        assert main(["generate", "--generator", SPEC, "--n", "160", "--out", str(root / "store"), "-q"]) == 0
        assert main(["fit", "--store", str(root / "store"), "--method", "knn", "--generator", SPEC, "--out", str(root / "knn.joblib"),
                     "--set", "n_components=8", "--set", "pool_shape=[16,16]"]) == 0  # progress on: invert is quiet all the same
    return root


def test_store_records_the_generators_picture(work, capsys):
    store = open_store(work / "store")
    fe = store.frontend_config
    assert fe["kind"] == "generator" and (fe["n_freq"], fe["n_frames"]) == (64, 64) and fe["db_range"] == [-80.0, 0.0]
    waves = store.waveforms("train")[:3]
    specs = store_spectrograms(store, "train", frontend=store_picture(store, toygen.pictured))[:3]
    np.testing.assert_array_equal(specs, toygen.log_picture(waves))
    assert specs.min() == pytest.approx(toygen.PICTURE_FLOOR)  # its own floor, not wavinv's -100 dB
    # a file spec is code: the store never imports it by itself
    with pytest.raises(StoreError, match="--generator SPEC"):
        store_spectrograms(store, "train")
    code, out, _ = run(capsys, "info", str(work / "store"))
    assert code == 0 and "the generator's own spectrogram function (toy): 64x64" in out
    code, out, _ = run(capsys, "info", str(work / "knn.joblib"))
    assert code == 0 and "the generator's own spectrogram function (toy): 64x64" in out


def test_a_png_it_wrote_inverts_as_well_as_the_waveform(work, capsys, monkeypatch):
    store = open_store(work / "store")
    row = int(store.split_indices("test")[0])
    save_wav(store.waveforms()[row], work / "target.wav", store.sample_rate)
    monkeypatch.chdir(work / "elsewhere")
    code, out, _ = run(capsys, "spectrogram", str(work / "target.wav"), str(work / "target.png"), "--generator", SPEC)
    assert code == 0 and "64x64" in out
    wav = load_target(work / "target.wav", 8000, toygen.N_SAMPLES)
    png = load_target(work / "target.png", 8000, toygen.N_SAMPLES, spec_shape=(64, 64), db_range=(-80.0, 0.0))
    # the .png holds the generator's picture, within half a grey level of 80 dB / 255
    assert np.abs(png.data - toygen.log_picture(wav.data[None])[0]).max() <= 80 / 255 / 2 + 1e-4
    results = {}
    for name in ("target.wav", "target.png"):
        code, out, err = run(capsys, "invert", "--model", str(work / "knn.joblib"), "--generator", SPEC, "--target", str(work / name),
                             "--n", "4", "--draws", "16", "--out", str(work / f"{name}.json"))
        assert code == 0 and err == "" and "\n\n" not in out, err  # no progress bar, no stray line
        assert "chance level: the best of 16 random patches" in out and "all frames" in out
        results[name] = json.loads((work / f"{name}.json").read_text())["candidates"]
    by_wav, by_png = results["target.wav"], results["target.png"]
    # the same neighbours, ranked against the same picture (the png's to 8 bits)
    assert [c["params"] for c in by_png] == [c["params"] for c in by_wav]
    np.testing.assert_allclose([c["distance"]["lsd_db"] for c in by_png], [c["distance"]["lsd_db"] for c in by_wav], atol=0.2)

    # render any candidates file, from another folder
    code, out, err = run(capsys, "render", "--generator", SPEC, str(work / "target.png.json"), "--out", str(work / "heard"))
    assert code == 0, err
    assert sorted(p.name for p in (work / "heard").iterdir()) == ["candidate_1.wav", "candidate_2.wav", "candidate_3.wav", "candidate_4.wav", "candidates.png"]
    first = load_target(work / "heard" / "candidate_1.wav", 8000, toygen.N_SAMPLES).data
    expected = toygen.pictured.render(toygen.SPACE.from_dict(by_png[0]["params"])[None])[0]
    assert np.abs(first - expected).max() < 1e-4


def test_a_model_never_meets_another_picture(work, capsys):
    inv = load(work / "knn.joblib")
    with pytest.raises(ModelError, match="another picture"):
        inv.attach(toygen.repictured)
    with pytest.raises(ModelError, match="attach the generator first"):
        inv.frontend_module()
    code, _, err = run(capsys, "invert", "--model", str(work / "knn.joblib"), "--generator", OTHER, "--target", str(work / "store"),
                       "--out", str(work / "x.json"))
    assert code == 2 and err.count("\n") == 1
    with pytest.raises(StoreError, match="another picture"):
        store_picture(open_store(work / "store"), toygen.repictured)
    # a generator without a picture of its own cannot stand in for one that has it
    with pytest.raises(ModelError, match="has none"):
        load(work / "knn.joblib").attach(toygen.toy)


def test_ranking_and_refinement_score_the_users_picture_in_full(work, capsys):
    inv = load(work / "knn.joblib")
    inv.attach(toygen.pictured)
    assert not inv.coarse_frames  # no every-8th-frame subset of the user's function
    store = open_store(work / "store")
    wave = store.waveforms("test")[1]
    res = inv.invert(wave, n=3, draws=16, random_state=0, shortlist=3, refine=30)
    assert res.spectrograms.shape == (3, 64, 64) and capsys.readouterr().err == ""  # quiet from Python by default
    assert [c["params"] for c in res.candidates] == [toygen.SPACE.to_dict(p) for p in res.params]
    np.testing.assert_array_equal(res.target_spectrogram, toygen.log_picture(wave[None])[0])
    exact = [float(np.sqrt(((res.target_spectrogram - s) ** 2).mean(axis=0)).mean()) for s in toygen.log_picture(res.waveforms)]
    np.testing.assert_allclose(res.distances["lsd_db"], exact, rtol=1e-5)

    # a best candidate far quieter than the target is flagged
    from wavinv.cli import candidates_report

    assert "quieter" not in candidates_report(res)
    res.spectrograms = res.target_spectrogram[None] - 30.0
    assert res.level_gap_db() == pytest.approx(30.0, abs=1e-3)
    assert "warning: the best candidate is 30 dB quieter than the target" in candidates_report(res)


def test_bench_uses_the_users_picture(work, capsys):
    code, out, err = run(capsys, "bench", "--store", str(work / "store"), "--out", str(work / "bench"), "--methods", "prior,knn",
                         "--inputs", "spectrogram", "--profile", "test", "--targets", "2", "--generator", SPEC)
    assert code == 0, err
    # into a log (not a terminal): one bar per row, no bars nested inside it, no cursor moves
    assert "\x1b" not in err and "features" not in err and "target/s" not in err and "bench" in err
    rows = json.loads((work / "bench" / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"prior", "knn", "floor"}
    assert "| picture | the generator's own spectrogram function (toy): 64x64" in (work / "bench" / "results.md").read_text()
    gallery = np.load(next((work / "bench" / "evals").glob("knn-spectrogram.gallery-*.npz")))
    assert gallery["target"].shape == (64, 64) and gallery["target"].min() >= toygen.PICTURE_FLOOR - 0.1


def test_function_generator_and_picture_checks(tmp_path):
    gen = toygen.pictured
    assert not hasattr(toygen.toy, "spectrogram")  # no function given: wavinv's frontend
    with pytest.raises(GeneratorError, match="spectrogram must be callable"):
        FunctionGenerator(toygen.SPACE, toygen.render_clips, 8000, toygen.N_SAMPLES, "x", spectrogram="no")
    pic = GeneratorPicture(gen)
    assert pic.output_shape == (64, 64)
    assert np.array_equal(spectrogram(probe_clip(8000, toygen.N_SAMPLES), pic), toygen.log_picture(probe_clip(8000, toygen.N_SAMPLES)[None])[0])
    for bad, why in ((lambda w: np.full((len(w), 4, 4), np.nan, np.float32), "NaN"), (lambda w: np.zeros((len(w) + 1, 4, 4), np.float32), "shape")):
        broken = FunctionGenerator(toygen.SPACE, toygen.render_clips, 8000, toygen.N_SAMPLES, "broken", spectrogram=bad)
        with pytest.raises(RenderError, match=why):
            GeneratorPicture(broken)
        with pytest.raises(RenderError, match=why):  # generate refuses it before writing anything
            generate(tmp_path / "s", broken, n=8, progress=False)
        assert not (tmp_path / "s").exists()
    with pytest.raises(InputError, match="generator's own spectrogram"):
        Spectrogram.from_config(pic.config())


def test_spectrogram_and_render_refuse_bad_input_in_one_line(work, capsys):
    wav = work / "short.wav"
    save_wav(np.zeros(500, np.float32), wav, 8000)
    clip = work / "clip.npy"
    np.save(clip, np.zeros(toygen.N_SAMPLES, np.float32))
    cands = work / "cands.json"
    cands.write_text(json.dumps({"generator": {"fingerprint": toygen.SPACE.fingerprint}, "candidates": [{"rank": 1, "params": {"freq": 100.0, "amp": 0.5, "wave": 0}}]}))
    cases = [
        (["spectrogram", str(wav), str(work / "x.txt")], "must end in .png or .npy"),
        (["spectrogram", str(wav), str(wav.with_suffix(".npy")), "--generator", SPEC], "--pad"),
        (["spectrogram", str(work / "target.png"), str(work / "y.npy"), "--generator", SPEC], "already a spectrogram"),
        (["spectrogram", str(clip), str(clip), "--generator", SPEC], "refusing to overwrite an input"),
        (["render", "--generator", SPEC, str(work / "missing.json"), "--out", str(work / "r")], "not found"),
        (["render", "--generator", SPEC, str(wav), "--out", str(work / "r")], "not a readable JSON"),
        (["render", "--generator", SPEC, str(cands), "--out", str(cands)], "refusing to overwrite an input"),
        (["render", "--generator", SPEC, str(cands), "--out", str(work / "target.png")], "not a directory"),
        (["render", "--generator", f"{HERE / 'toygen.py'}:other_space", str(cands), "--out", str(work / "r")], "space fingerprint"),
    ]
    (work / "in").mkdir()
    inside = work / "in" / "candidates.png"
    inside.write_text(json.dumps({"candidates": [{"params": {"freq": 1e6, "amp": 0.5, "wave": 0}}]}))
    cases += [
        (["render", "--generator", SPEC, str(inside), "--out", str(work / "in")], "refusing to overwrite an input"),
        (["render", "--generator", SPEC, str(inside), "--out", str(work / "r2")], "outside the space"),
    ]
    for argv, why in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2 and why in err and err.count("\n") == 1, (argv, err)
    assert not (work / "r").exists() and not (work / "r2").exists() and not (work / "x.txt").exists()
    code, _, err = run(capsys, "spectrogram", str(wav), str(work / "short.npy"), "--generator", SPEC, "--pad")
    assert code == 0 and np.load(work / "short.npy").shape == (64, 64)


def test_demo_reuses_its_model_and_prints_the_chance_level(tmp_path, capsys):
    argv = ["demo", "--out", str(tmp_path / "demo"), "--n", "48", "--method", "knn", "--workers", "1", "--refine", "0", "-q"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "fitting knn" in out and "chance level: the best of 256 random patches" in out and "\n\n" not in out
    first = json.loads((tmp_path / "demo" / "candidates.json").read_text())
    assert first["chance"]["draws"] == 256 and first["chance"]["frames"] == "every 8th frame"
    page = (tmp_path / "demo" / "report.html").read_text()  # the page to listen to: the target, then its 8 candidates
    assert page.count("<audio") == 9 and "chance: the best of 256 random parameter sets" in page
    assert "floor: the true parameters re-rendered with another noise seed" in page and "Gap closed" in page  # the held-out sound's truth is known
    code, out, err = run(capsys, *argv)
    assert code == 0 and "reusing" in out and "fitting" not in out, out
    assert json.loads((tmp_path / "demo" / "candidates.json").read_text())["candidates"] == first["candidates"]


def test_demo_refines_and_its_chance_level_gets_the_same_render_budget(tmp_path, capsys):
    argv = ["demo", "--out", str(tmp_path / "demo"), "--n", "48", "--method", "knn", "--workers", "1", "--refine", "96", "-q"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "then 96 renders of search through the synth" in out
    doc = json.loads((tmp_path / "demo" / "candidates.json").read_text())
    # random patches get as many renders as the inversion spent beyond its distinct draws
    assert doc["chance"]["draws"] == doc["draws"] + doc["renders"] - doc["unique_draws"] > doc["draws"]
