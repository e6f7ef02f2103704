"""A model, or its estimator, never meets another generator, parameter space or picture: one line naming both, exit 2,
nothing written (``MismatchError``)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from wavinv import FunctionGenerator, InputError, MismatchError, ModelError
from wavinv.cli import main
from wavinv.generate import generate
from wavinv.generators import generator_identity
from wavinv.inverter import Inverter, fit_inverter, load
from wavinv.methods import build_method
from wavinv.targets import save_wav

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import toygen  # noqa: E402

TOY = str(HERE / "toygen.py")
KNN = {"n_neighbors": 3, "n_components": 4, "progress": False}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A toy store and a knn model fitted on it; a store of another parameter space and its model; a target clip."""
    root = tmp_path_factory.mktemp("mismatch")
    store = generate(root / "store", f"{TOY}:toy", n=64, seed=0, progress=False)
    fit_inverter(store, "knn", overrides=KNN, progress=False).save(root / "knn.joblib")
    other = generate(root / "other-store", f"{TOY}:other_space", n=64, seed=0, progress=False)
    fit_inverter(other, "knn", overrides=KNN, progress=False).save(root / "other-knn.joblib")
    save_wav(store.waveforms("test")[0], root / "target.wav", store.sample_rate)
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden temporaries too) and the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "spec, differs",
    [
        ("other", "name 'toy' vs 'other'"),
        ("newer", "version '1' vs '2'"),
        ("other_space", "parameter space (freq 50 to 2000 (log) vs 50 to 4000 (log); fingerprint"),
    ],
)
def test_a_model_refuses_another_generator_naming_both(work, spec, differs):
    inv = load(work / "knn.joblib")
    with pytest.raises(MismatchError) as caught:
        inv.attach(f"{TOY}:{spec}")
    message = str(caught.value)
    assert isinstance(caught.value, ModelError) and isinstance(caught.value, InputError)
    assert message.startswith("the model was fitted on generator 'toy' v1 (3 params, 1024 samples @ 8000 Hz), not '") and differs in message
    assert "\n" not in message


def test_a_model_refuses_another_picture_either_way(work):
    with pytest.raises(MismatchError, match=r"fitted on wavinv stft 512x512 .* now draws its own picture"):
        load(work / "knn.joblib").attach(toygen.pictured)
    pictured = generate(work / "pictured-store", toygen.pictured, n=48, seed=0, progress=False)
    inv = fit_inverter(pictured, "knn", overrides=KNN, progress=False, generator=toygen.pictured)
    with pytest.raises(MismatchError, match="has none"):
        inv.attach(toygen.toy)
    with pytest.raises(MismatchError, match="another picture"):
        inv.attach(toygen.repictured)


def proxy_fitted_on(shape: tuple[int, int], n_params: int):
    """A tiny proxy estimator fitted on random pictures of ``shape`` and ``n_params`` parameters."""
    from baselines.proxy import TINY

    rng = np.random.default_rng(0)
    est = build_method("proxy", **{**TINY, "n_components": 2, "max_epochs": 1})
    return est.fit(rng.normal(-40.0, 5.0, (8, *shape)).astype(np.float32), rng.random((8, n_params)))


def test_an_estimator_fitted_on_another_space_or_picture_is_refused(work):
    """Built from parts, or a model file holding them: the estimator's own fitted shapes are checked."""
    model = load(work / "knn.joblib")
    parts = dict(generator=model.generator, input="spectrogram", frontend=model.frontend, method="proxy")
    with pytest.raises(MismatchError, match=r"ProxySearch was fitted on 5 parameters, the model's generator 'toy' v1 \(3 params.*has 3"):
        Inverter(proxy_fitted_on((512, 512), 5), **parts)
    small = proxy_fitted_on((64, 64), 3)
    another_picture = r"ProxySearch was fitted on spectrograms of shape \(64, 64\), the model's wavinv stft 512x512 .* makes \(512, 512\)"
    with pytest.raises(MismatchError, match=another_picture):
        Inverter(small, **parts)
    model.estimator = small  # a model file put together by hand
    model.save(work / "assembled.joblib")
    with pytest.raises(MismatchError, match="assembled.joblib: the estimator " + another_picture):
        load(work / "assembled.joblib")


class _TooMany:
    """A sampler that draws one parameter more than the space has (and records no fitted shapes)."""

    def predict(self, X):
        return np.full((len(X), 4), 0.5)

    def sample(self, X, n_samples, random_state=None):
        return np.random.default_rng(random_state).random((len(X), n_samples, 4))


def test_draws_of_another_length_are_refused_before_any_render(work):
    renders = []

    def counted(params):
        renders.append(len(params))
        return toygen.render_clips(params)

    gen = FunctionGenerator(toygen.SPACE, counted, sample_rate=8000, n_samples=toygen.N_SAMPLES, name="toy", version="1")
    model = load(work / "knn.joblib")
    inv = Inverter(_TooMany(), generator=generator_identity(gen, "toy"), input="spectrogram", frontend=model.frontend, method="too-many")
    inv.attach(gen)
    with pytest.raises(MismatchError, match=r"sampled 4 parameters per draw, the generator 'toy' v1 \(3 params.*has 3: nothing rendered"):
        inv.invert(toygen.render_clips(np.array([[440.0, 0.5, 1.0]]))[0], n=2, draws=4, random_state=0)
    assert renders == []


@pytest.mark.parametrize("spec", ["other_space", "newer"])
def test_cli_invert_with_another_generator_exits_2_and_writes_nothing(work, capsys, spec):
    out = work / f"cands-{spec}.json"
    out.write_text('{"an": "earlier result"}')
    before = files(work)
    code, stdout, err = run(capsys, "invert", "--model", work / "knn.joblib", "--generator", f"{TOY}:{spec}", "--target", work / "target.wav",
                            "--out", out, "--plot", work / f"plot-{spec}.png", "--report", work / f"page-{spec}.html")
    assert code == 2 and stdout == "" and err.count("\n") == 1, err
    assert "the model was fitted on generator 'toy' v1" in err and ("not 'toy' v2" in err if spec == "newer" else "fingerprint" in err)
    assert files(work) == before  # the earlier --out byte-identical; no plot, page or temporary file


def test_bench_refuses_a_reused_model_of_another_generator(work, tmp_path, capsys):
    argv = ["bench", "--store", work / "store", "--generator", f"{TOY}:toy", "--profile", "test", "--methods", "knn", "--inputs", "spectrogram",
            "--targets", "2", "--out", tmp_path / "bench", "-q"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    # another store's model put where the bench keeps its fitted knn (its sidecar still says it was fitted here)
    shutil.copyfile(work / "other-knn.joblib", tmp_path / "bench" / "models" / "knn-spectrogram.joblib")
    before = files(tmp_path / "bench")
    code, stdout, err = run(capsys, *argv)
    assert code == 2 and stdout == "" and err.count("\n") == 1, err
    assert "knn-spectrogram.joblib was fitted on generator 'toy' v1 (3 params" in err and f"the store {work / 'store'} holds 'toy' v1" in err
    assert "freq 50 to 4000 (log) vs 50 to 2000 (log)" in err and "delete it to fit again" in err
    assert files(tmp_path / "bench") == before  # results.md and every other file as they were; nothing new
