"""The inverter and the fit / invert commands: ranking, identity checks, bad input, no partial files."""

import json
from pathlib import Path

import numpy as np
import pytest

from wavinv import InputError, ModelError
from wavinv.cli import main
from wavinv.generate import generate
from wavinv.frontend import frontend_config
from wavinv.generators import generator_identity, load_generator, render_checked
from wavinv.inverter import fit_inverter, load
from wavinv.metrics import lsd_db
from wavinv.pictures import store_spectrograms
from wavinv.targets import Target, save_spectrogram_png, save_wav

TOY = str(Path(__file__).parent / "toygen.py")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    store = generate(root / "store", f"{TOY}:toy", n=256, seed=0, progress=False)
    inv = fit_inverter(store, "knn", "spectrogram", overrides={"n_neighbors": 8, "n_components": 8, "progress": False})
    inv.save(root / "model.joblib")
    return root, store, inv


def test_best_of_k_is_never_worse_than_the_first_draw(fitted):
    _, store, inv = fitted
    gen = inv.attach(f"{TOY}:toy")
    for i in store.split_indices("test")[:5]:
        wave = store.waveforms()[int(i)]
        res = inv.invert(Target("waveform", wave, f"id {i}"), n=4, draws=16, random_state=int(i))
        assert np.all(np.diff(res.distances["lsd_db"]) >= 0)  # best first
        first = inv.estimator.sample(inv.spectrograms(wave[None]), 16, random_state=int(i))[0, :1]
        first_lsd = lsd_db(res.target_spectrogram, inv.spectrograms(render_checked(gen, inv.space.from_unit(first))))[0]
        assert res.distances["lsd_db"][0] <= first_lsd + 1e-6
        np.testing.assert_allclose(inv.space.to_unit(res.params), res.params_unit, atol=1e-9)


def test_the_shortlist_keeps_the_best_draws_and_exact_ranking_is_never_worse():
    # prior draws are all distinct, so 32 draws with n=2 go through the shortlist (4 * n = 8 kept)
    from wavinv.inverter import Inverter
    from wavinv.models.prior import PriorSampler

    gen = load_generator("synth100")
    space = gen.space
    y = space.sample_unit(0, 8, seed=1)
    inv = Inverter(PriorSampler().fit(np.zeros((8, gen.n_samples), np.float32), y), generator=generator_identity(gen, "synth100"), input="waveform", frontend=frontend_config(), method="prior")
    target = gen.render(space.from_unit(y[:1]))[0]
    fast = inv.invert(target, n=2, draws=32, random_state=0)
    exact = inv.invert(target, n=2, draws=32, random_state=0, shortlist=32)
    assert "shortlist" in fast.timing and "shortlist" not in exact.timing
    assert fast.n_unique == exact.n_unique == 32
    assert exact.distances["lsd_db"][0] <= fast.distances["lsd_db"][0]
    # reported distances are the full 512 x 512 lsd_db of the candidates returned
    np.testing.assert_allclose(fast.distances["lsd_db"], lsd_db(fast.target_spectrogram, inv.spectrograms(fast.waveforms)))
    with pytest.raises(InputError, match="shortlist"):
        inv.invert(target, n=4, draws=32, shortlist=3)


def test_a_training_clip_is_found_again(fitted):
    # knn samples neighbours' parameters: a clip seen in training is its own nearest neighbour
    _, store, inv = fitted
    i = int(store.split_indices("train")[0])
    res = inv.invert(store.waveforms()[i], n=1, draws=8, random_state=0)
    assert res.distances["lsd_db"][0] == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_allclose(res.params[0], store.params()[i])


def test_spectrogram_target_and_json(fitted):
    _, store, inv = fitted
    spec = store_spectrograms(store)[int(store.split_indices("test")[0])]
    res = inv.invert(spec, n=3, draws=12, random_state=1)
    doc = res.to_json()
    assert doc["generator"]["fingerprint"] == inv.fingerprint
    assert [c["rank"] for c in doc["candidates"]] == [1, 2, 3]
    assert set(doc["candidates"][0]["params"]) == set(inv.space.names)
    assert "mrstft" not in doc["candidates"][0]["distance"]  # no waveform, no mrstft


def test_same_seed_same_candidates_after_a_save_and_load(fitted):
    root, store, inv = fitted
    again = load(root / "model.joblib")
    again.attach(f"{TOY}:toy")
    wave = store.waveforms()[int(store.split_indices("test")[1])]
    a = inv.invert(wave, n=3, draws=12, random_state=5)
    b = again.invert(wave, n=3, draws=12, random_state=5)
    np.testing.assert_array_equal(a.params, b.params)
    assert again.manifest()["store"]["fingerprint"] == store.fingerprint


def test_generator_identity_is_checked(fitted):
    root, _, _ = fitted
    inv = load(root / "model.joblib")
    with pytest.raises(ModelError, match="name it with --generator"):
        inv.attach()
    with pytest.raises(ModelError, match="fingerprint"):
        inv.attach(f"{TOY}:other_space")
    with pytest.raises(InputError, match="n <= draws"):
        inv.invert(np.zeros(1024, np.float32), n=5, draws=2, generator=f"{TOY}:toy")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_invert_writes_json_and_plot(fitted, tmp_path, capsys):
    root, store, _ = fitted
    save_wav(store.waveforms()[int(store.split_indices("test")[0])], tmp_path / "t.wav", 8000)
    code, out, err = run(capsys, "invert", "--model", root / "model.joblib", "--generator", f"{TOY}:toy", "--target", tmp_path / "t.wav",
                         "--n", 3, "--draws", 12, "--out", tmp_path / "c.json", "--plot", tmp_path / "c.png")
    assert code == 0, err
    doc = json.loads((tmp_path / "c.json").read_text())
    assert len(doc["candidates"]) == 3 and doc["candidates"][0]["distance"]["lsd_db"] <= doc["candidates"][2]["distance"]["lsd_db"]
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _bad_targets(d: Path, store):
    np.save(d / "shape.npy", np.zeros((64, 64), np.float32))
    np.save(d / "nan.npy", np.full(1024, np.nan, np.float32))
    np.save(d / "short.npy", np.zeros(100, np.float32))
    (d / "empty.png").write_bytes(b"")
    (d / "text.png").write_text("hello")
    save_spectrogram_png(np.zeros((64, 64)), d / "small.png")
    save_wav(np.zeros(1024, np.float32), d / "ok.wav", 8000)
    (d / "trunc.wav").write_bytes((d / "ok.wav").read_bytes()[:20])
    return {
        "shape.npy": "shape (64, 64)",
        "nan.npy": "NaN",
        "short.npy": "100 samples",
        "empty.png": "not a readable image",
        "text.png": "not a readable image",
        "small.png": "64x64",
        "trunc.wav": "not a readable WAV",
        "missing.wav": "not found",
    }


def test_cli_invert_bad_targets_one_line_exit_2_no_output(fitted, tmp_path, capsys):
    root, store, _ = fitted
    cases = _bad_targets(tmp_path, store)
    for name, message in cases.items():
        code, out, err = run(capsys, "invert", "--model", root / "model.joblib", "--generator", f"{TOY}:toy", "--target", tmp_path / name,
                             "--n", 2, "--draws", 4, "--out", tmp_path / "c.json", "--plot", tmp_path / "c.png")
        assert code == 2, name
        assert len(err.strip().splitlines()) == 1 and message in err, (name, err)
        assert not (tmp_path / "c.json").exists() and not (tmp_path / "c.png").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_cli_model_and_generator_errors(fitted, tmp_path, capsys):
    root, _, _ = fitted
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    np.save(tmp_path / "w.npy", np.zeros(1024, np.float32))
    for argv, message in [
        (["--model", tmp_path / "junk.joblib"], "not a readable wavinv model"),
        (["--model", tmp_path / "none.joblib"], "model not found"),
        (["--model", root / "model.joblib"], "name it with --generator"),
        (["--model", root / "model.joblib", "--generator", f"{TOY}:other_space"], "fingerprint"),
    ]:
        code, _, err = run(capsys, "invert", *argv, "--target", tmp_path / "w.npy", "--out", tmp_path / "c.json")
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
        assert not (tmp_path / "c.json").exists()


def test_cli_fit_errors_leave_no_model(fitted, tmp_path, capsys):
    root, _, _ = fitted
    for argv, message in [
        (["--store", root / "store", "--method", "magic"], "unknown method"),
        (["--store", tmp_path / "nostore", "--method", "knn"], "nostore"),
        (["--store", root / "store", "--method", "knn", "--set", "n_neighbours=3"], "no hyper-parameter"),
    ]:
        code, _, err = run(capsys, "fit", *argv, "--out", tmp_path / "m.joblib")
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
        assert not (tmp_path / "m.joblib").exists()


def test_cli_fit_writes_a_model_that_info_describes(fitted, tmp_path, capsys):
    root, _, _ = fitted
    code, out, err = run(capsys, "fit", "--store", root / "store", "--method", "prior", "--input", "waveform", "--out", tmp_path / "p.joblib")
    assert code == 0, err
    assert "validation" in out and load(tmp_path / "p.joblib").input == "waveform"
    code, out, err = run(capsys, "info", tmp_path / "p.joblib")
    assert code == 0 and "prior" in out and "toy" in out and "train clips" in out
    code, out, err = run(capsys, "info", tmp_path / "p.joblib", "--json")
    assert json.loads(out)["generator"]["fingerprint"] == load(tmp_path / "p.joblib").fingerprint


def test_learnt_parameters_tell_a_pinned_parameter_from_a_free_one():
    from wavinv.inverter import learnt_parameters

    rng = np.random.default_rng(0)
    truth = rng.random((200, 2))
    samples = np.stack([truth[:, 0][:, None] + rng.normal(0, 0.02, (200, 32)), rng.random((200, 32))], axis=-1)
    learnt = learnt_parameters(["pinned", "free"], truth, np.clip(samples, 0, 1))
    assert list(learnt) == ["pinned", "free"]  # lowest ratio first
    assert learnt["pinned"]["ratio"] < 0.1 and abs(learnt["free"]["ratio"] - 1) < 0.05
    assert abs(learnt["free"]["prior"] - 1 / 3) < 0.03  # a uniform draw is 1/3 from a uniform truth on average


def test_row_chunks_index_as_the_joined_array_would():
    from wavinv.inverter import _Rows, _unseen

    rng = np.random.default_rng(0)
    chunks = [rng.random((n, 3, 2)).astype(np.float32) for n in (5, 0, 3, 4)]
    joined, rows = np.concatenate(chunks), _Rows(chunks)
    assert len(rows) == 12
    for index in (slice(None), slice(4, None), slice(12, None), np.array([11, 0, 5, 5, 7]), np.array([], dtype=int)):
        np.testing.assert_array_equal(rows[index], joined[index])
    known: set[bytes] = set()
    part = (np.arange(4), np.array([[0.0, 1.0], [-0.0, 1.0], [2.0, 3.0], [0.0, 1.0]]))
    first = _unseen(part, known)
    np.testing.assert_array_equal(first[0], [0, 2])  # -0.0 is 0.0, as np.unique compares them
    assert [len(a) for a in _unseen(part, known)] == [0, 0]  # a parameter set seen before counts once
