"""Clips rendered while training: the bytes generate stores, the same model whatever the render workers,
more clips than the store holds, and the refusals (a generator that cannot load, renders other clips, or dies)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wavinv import GeneratorError, InputError, RenderError, StoreError, load, load_generator, open_store
from wavinv.baselines import conv1d, spec_cnn
from wavinv.cli import main
from wavinv.clips import clip_renderer, sequence_params_unit
from wavinv.generate import generate
from wavinv.inverter import fit_inverter
from wavinv.models.conv1d import Conv1dInverter
from wavinv.pictures import store_picture, store_spectrograms

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import toygen  # noqa: E402

TOY = f"{HERE / 'toygen.py'}:toy"
# a net that trains in a second on toy clips, in blocks small enough that a fit reads many of them
CONV = {**conv1d.TINY, "max_epochs": 2, "block_size": 8, "batch_size": 8}
SPEC = {**spec_cnn.TINY, "max_epochs": 1, "block_size": 8, "batch_size": 8, "frontend": {"sample_rate": 8000, "n_freq": 16, "n_frames": 16}}
N, MORE = 70, 150


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """Toy clips, seed 3, chunks of 16: 70 with waveforms, the same 70 without, and 150 with (what 70 grows to)."""
    root = tmp_path_factory.mktemp("clips")
    out = {name: root / name for name in ("wave", "nowave", "more")}
    generate(out["wave"], TOY, N, seed=3, chunk=16, progress=False)
    generate(out["nowave"], TOY, N, seed=3, chunk=16, progress=False, waveforms=False)
    generate(out["more"], TOY, MORE, seed=3, chunk=16, progress=False)
    return out


def weights(inv) -> dict[str, torch.Tensor]:
    return inv.estimator.net_.state_dict()


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def fit(store: Path, **kw):
    kw = {"input": "waveform", "overrides": CONV, "progress": False, "n_validation": 8, **kw}
    return fit_inverter(open_store(store), kw.pop("method", "conv1d"), **kw)


def blocks_of(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]


# -- the bytes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_rendered_clips_are_the_bytes_generate_stores(stores, workers):
    wave, more = open_store(stores["wave"]), open_store(stores["more"])
    with clip_renderer(open_store(stores["nowave"]), TOY, workers=workers, progress=False) as renderer:
        for split in ("train", "val", "test"):
            clips = renderer.split(N, split)
            ahead = np.concatenate(list(clips.read_blocks(blocks_of(len(clips), 5))))
            assert ahead.tobytes() == wave.waveforms(split)[:].tobytes() == clips[:].tobytes()
        # past the store's end: the clips and parameters of the store that `generate --n 150` makes
        clips = renderer.split(MORE, "train")
        assert np.concatenate(list(clips.read_blocks(blocks_of(len(clips), 7)))).tobytes() == more.waveforms("train")[:].tobytes()
        assert sequence_params_unit(wave, clips.ids).tobytes() == more.params_unit("train").tobytes()
        assert renderer.rendered > 2 * len(clips)


def test_a_built_in_generator_renders_in_workers_even_when_passed_as_an_object(tmp_path):
    kept = generate(tmp_path / "kept", "synth100", 24, progress=False)
    bare = generate(tmp_path / "bare", "synth100", 24, progress=False, waveforms=False)
    with clip_renderer(bare, load_generator("synth100"), progress=False) as renderer:  # as the bench passes it
        assert renderer.workers >= 1
        clips = renderer.split(24, None)
        assert np.concatenate(list(clips.read_blocks(blocks_of(24, 10)))).tobytes() == kept.waveforms()[:].tobytes()


@pytest.mark.parametrize("workers", [0, 2])
def test_pictures_of_rendered_clips_are_those_of_the_stored_clips(stores, workers):
    stored = store_spectrograms(open_store(stores["wave"]), "train")[:]
    with clip_renderer(open_store(stores["nowave"]), TOY, workers=workers, progress=False) as renderer:
        pictures = store_spectrograms(open_store(stores["nowave"]), "train", clips=renderer.split(N, "train"))
        assert np.concatenate(list(pictures.read_blocks(blocks_of(len(pictures), 6)))).tobytes() == stored.tobytes()
        assert pictures[:].tobytes() == stored.tobytes()


def test_the_generators_own_picture_of_rendered_clips_is_that_of_the_stored_clips(tmp_path):
    spec = f"{HERE / 'toygen.py'}:pictured"
    kept = generate(tmp_path / "kept", spec, 20, seed=1, progress=False)
    bare = generate(tmp_path / "bare", spec, 20, seed=1, progress=False, waveforms=False)
    stored = store_spectrograms(kept, None, frontend=store_picture(kept, spec))
    with clip_renderer(bare, spec, workers=1, progress=False) as renderer:
        pictures = store_spectrograms(bare, None, frontend=store_picture(bare, spec), clips=renderer.split(20, None))
        assert np.concatenate(list(pictures.read_blocks(blocks_of(20, 7)))).tobytes() == stored[:].tobytes()


def test_a_reader_may_stop_early_and_read_again(stores):
    stored = open_store(stores["wave"]).waveforms("train")
    with clip_renderer(open_store(stores["nowave"]), TOY, workers=1, progress=False) as renderer:
        clips = renderer.split(N, "train")
        reads = clips.read_blocks(blocks_of(len(clips), 2))
        np.testing.assert_array_equal(next(reads), stored[:2])
        reads.close()  # the blocks rendering ahead are cancelled or dropped
        np.testing.assert_array_equal(next(clips.read_blocks([np.array([5, 3])])), stored[[5, 3]])


# -- the models ----------------------------------------------------------------------------------
def test_the_same_model_whatever_the_render_workers_and_as_from_stored_clips(stores):
    stored = fit(stores["wave"])
    assert stored.training == {"data_wait_share": stored.training["data_wait_share"]}  # nothing rendered
    for workers in (0, 1, 2):
        rendered = fit(stores["nowave"], generator=TOY, render_workers=workers)
        assert_same_weights(rendered, stored)
        assert rendered.validation["param_mae"] == stored.validation["param_mae"]
        assert rendered.training["render_workers"] == workers and rendered.training["clips_rendered"] > 2 * stored.store["n_train"]
        assert 0 <= rendered.training["data_wait_share"] < 1


def test_spectrogram_fits_picture_rendered_clips(stores):
    stored = fit(stores["wave"], method="spec-cnn", input="spectrogram", overrides=SPEC)
    rendered = fit(stores["nowave"], method="spec-cnn", input="spectrogram", overrides=SPEC, generator=TOY, render_workers=1)
    assert_same_weights(rendered, stored)


def test_a_fit_from_the_feature_cache_renders_nothing(stores):
    inv = fit(stores["nowave"], method="knn", input="spectrogram", overrides={"n_components": 4, "n_neighbors": 3}, generator=TOY, render_workers=1)
    assert inv.training == {}


def test_render_clips_trains_on_the_clips_a_larger_store_holds(stores):
    grown = fit(stores["nowave"], generator=TOY, render_workers=1, render_clips=MORE)
    stored = fit(stores["more"])
    assert_same_weights(grown, stored)
    assert grown.store["n_train"] == stored.store["n_train"] > open_store(stores["nowave"]).split_indices("train").size
    assert grown.store["n_clips"] == MORE
    # a store with waveforms renders them all too, the same way
    assert_same_weights(fit(stores["wave"], generator=TOY, render_workers=1, render_clips=MORE), stored)


def test_cli_fit_renders_and_info_shows_the_wait(stores, tmp_path, capsys):
    out = tmp_path / "m.joblib"
    sets = [x for k, v in CONV.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    args = ["fit", "--store", str(stores["nowave"]), "--method", "conv1d", "--input", "waveform", "--generator", TOY, "--out", str(out), "-q"]
    assert main(args + sets + ["--render-workers", "2", "--render-clips", str(MORE)]) == 0
    printed = capsys.readouterr().out
    assert "waited on data" in printed and "by 2 worker processes" in printed
    assert load(out).store["n_clips"] == MORE
    assert main(["info", str(out)]) == 0
    assert "training    waited on data" in capsys.readouterr().out


# -- refusals ------------------------------------------------------------------------------------
@pytest.fixture()
def moved(tmp_path) -> tuple[Path, str, Path]:
    """A store without waveforms made by a generator file that was then moved: (store, its recorded spec, the file now)."""
    gen_file = tmp_path / "mygen.py"
    shutil.copy(HERE / "toygen.py", gen_file)
    spec = f"{gen_file}:toy"
    generate(tmp_path / "store", spec, 40, seed=1, chunk=16, progress=False, waveforms=False)
    (tmp_path / "moved").mkdir()
    return tmp_path / "store", spec, gen_file.rename(tmp_path / "moved" / "mygen.py")


def fit_fails(capsys, store: Path, out: Path, *extra: str) -> str:
    """Run a failing ``wavinv fit``: its one line of stderr (exit status 2)."""
    code = main(["fit", "--store", str(store), "--method", "conv1d", "--input", "waveform", "--out", str(out), "-q", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "generator, error, match",
    [
        (None, StoreError, "name it with --generator"),  # the recorded file is not there, and never imported anyway
        ("recorded", GeneratorError, "generator file not found"),
        ("no_such_module_for_wavinv:gen", GeneratorError, "cannot import module 'no_such_module_for_wavinv'"),
        (f"{HERE / 'toygen.py'}:other", StoreError, "was made by generator 'toy'"),
        (f"{HERE / 'toygen.py'}:altered", StoreError, "does not render the clips the store was made with"),
    ],
)
def test_a_generator_that_cannot_render_the_store_is_refused_before_training(moved, tmp_path, capsys, monkeypatch, generator, error, match):
    store, spec, _ = moved
    named = spec if generator == "recorded" else generator
    trained = []
    monkeypatch.setattr(Conv1dInverter, "fit", lambda self, *a, **k: trained.append(1))
    with pytest.raises(error, match=match):
        fit(store, generator=named)
    out = tmp_path / "m.joblib"
    line = fit_fails(capsys, store, out, *([] if named is None else ["--generator", named]))
    assert match in line
    assert (spec.partition(":")[0] if generator in (None, "recorded") else "") in line  # it names the file it looked for
    assert not trained and not out.exists()


def test_the_moved_file_named_where_it_is_now_renders(moved):
    store, _, now = moved
    assert fit(store, generator=f"{now}:toy", render_workers=1).training["clips_rendered"] > 0


def test_render_clips_is_checked_before_any_work(stores, tmp_path, capsys):
    with pytest.raises(InputError, match="fewer than the 70 samples"):
        fit(stores["nowave"], generator=TOY, render_clips=N - 1)
    assert "fewer than the 70 samples" in fit_fails(capsys, stores["nowave"], tmp_path / "m.joblib", "--generator", TOY, "--render-clips", "69")
    assert "--render-workers: must be >= 0" in fit_fails(capsys, stores["nowave"], tmp_path / "m.joblib", "--render-workers", "-1")
    with pytest.raises(InputError, match="holds fewer clips than the 150 asked for: fit without a scheduler"):
        fit(stores["wave"], generator=TOY, render_clips=MORE, scheduler="local:1")
    with pytest.raises(StoreError, match="does not render the clips"):  # a store with waveforms compares the clips themselves
        fit(stores["wave"], generator=f"{HERE / 'toygen.py'}:altered", render_clips=MORE)
    with pytest.raises(InputError, match="by its spec"):  # an object cannot be sent to worker processes
        fit(stores["nowave"], generator=toygen.toy, render_workers=2)


def test_a_dying_render_worker_stops_the_fit_naming_the_sample(stores, tmp_path, capsys, monkeypatch):
    store = open_store(stores["nowave"])
    victim = int(store.split_indices("train")[9])
    monkeypatch.setenv("TOYGEN_DIE_AMP", repr(float(store.params()[victim, 1])))
    dies = f"{HERE / 'toygen.py'}:dies"
    with pytest.raises(RenderError, match=f"rendering sample {victim} killed the render worker"):
        fit(stores["nowave"], generator=dies, render_workers=2)
    out = tmp_path / "m.joblib"
    out.write_bytes(b"an earlier model")
    line = fit_fails(capsys, stores["nowave"], out, "--generator", dies, "--render-workers", "2")
    assert f"sample {victim} killed" in line
    assert out.read_bytes() == b"an earlier model" and [p.name for p in tmp_path.iterdir()] == ["m.joblib"]
