"""The neural inverters (conv1d, spec-cnn) on tiny data, on CPU, in seconds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import torch

from wavinv.errors import InputError, ModelError
from wavinv.lazy import LazyArray
from wavinv.metrics import coverage
from wavinv.models.neural import BlockLoader
from wavinv.models.conv1d import Conv1dInverter
from wavinv.models.spec_cnn import SpecCNNInverter

T = 1024
SR = 8000
FRONTEND = {"sample_rate": SR, "n_freq": 32, "n_frames": 32}
# tiny networks, one thread (small ops are much faster without thread hand-offs)
TINY = {"hidden": 32, "latent_dim": 8, "flow_hidden": 32, "flow_transforms": 2, "batch_size": 32, "n_threads": 1, "progress": False, "block_size": 32}
CONV = {"channels": (8, 16, 16), "first_kernel": 16, "first_stride": 4, **TINY}
SPEC = {"channels": (4, 8), "pool": 1, "frontend": FRONTEND, **TINY}


def toy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sines: y0 sets the pitch, y1 the level, y2 changes nothing (unidentifiable)."""
    y = np.random.default_rng(seed).uniform(size=(n, 3)).astype(np.float32)
    t = np.arange(T) / SR
    freq = 100.0 * 2 ** (4 * y[:, :1])
    X = (0.1 + 0.9 * y[:, 1:2]) * np.sin(2 * np.pi * freq * t)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def data():
    return toy(192)


@pytest.fixture(scope="module")
def flow_model(data):
    X, y = data
    return Conv1dInverter(head="flow", max_epochs=15, patience=15, lr=3e-3, **CONV).fit(X, y)


@pytest.fixture(scope="module")
def noise_model(data):
    X, y = data
    return SpecCNNInverter(head="latent-noise", max_epochs=6, lr=3e-3, **SPEC).fit(X, y)


def test_shapes_and_range(data, flow_model, noise_model):
    X, y = data
    for m in (flow_model, noise_model):
        p = m.predict(X[:7])
        s = m.sample(X[:7], 5, random_state=0)
        assert p.shape == (7, 3) and s.shape == (7, 5, 3)
        assert 0 <= p.min() and p.max() <= 1 and 0 <= s.min() and s.max() <= 1
        np.testing.assert_array_equal(s, m.sample(X[:7], 5, random_state=0))
        assert not np.array_equal(s, m.sample(X[:7], 5, random_state=1))
        assert m.fit_stats_["steps"] > 0 and 0 <= m.fit_stats_["data_wait_share"] < 1


def test_short_fit_lowers_the_loss(flow_model, noise_model):
    for m in (flow_model, noise_model):
        h = m.history_
        assert h["train_loss"][-1] < h["train_loss"][0]
        assert min(h["val_loss"]) < h["val_loss"][0]


def test_spectrogram_input_skips_the_frontend(data):
    from wavinv.frontend import Spectrogram

    X, y = data
    S = Spectrogram(n_samples=T, **FRONTEND)(torch.from_numpy(X[:64])).numpy()
    for cls, kw in ((SpecCNNInverter, SPEC), (Conv1dInverter, CONV)):
        m = cls(head="latent-noise", max_epochs=1, **kw).fit(S, y[:64])
        assert m.net_.frontend is None
        assert m.predict(S[:3]).shape == (3, 3)
        with pytest.raises(InputError):
            m.predict(X[:3])  # waveforms to a model fitted on spectrograms


def test_deterministic_under_a_seed(data):
    X, y = data
    kw = dict(head="flow", max_epochs=2, **CONV)
    a = Conv1dInverter(random_state=3, **kw).fit(X, y)
    b = Conv1dInverter(random_state=3, **kw).fit(X, y)
    c = Conv1dInverter(random_state=4, **kw).fit(X, y)
    for k, v in a.net_.state_dict().items():
        assert torch.equal(v, b.net_.state_dict()[k]), k
    np.testing.assert_array_equal(a.sample(X[:4], 8, random_state=0), b.sample(X[:4], 8, random_state=0))
    assert not np.array_equal(a.predict(X[:4]), c.predict(X[:4]))


def test_lazy_input_gives_the_same_model(data):
    X, y = data
    reads = []

    def read(idx):
        reads.append(len(idx))
        return X[idx]

    lazy = LazyArray(len(X), X.shape[1:], np.float32, read)
    kw = dict(head="latent-noise", max_epochs=2, **SPEC)
    a = SpecCNNInverter(**kw).fit(X, y)
    b = SpecCNNInverter(**kw).fit(lazy, y)
    np.testing.assert_array_equal(a.predict(X[:8]), b.predict(lazy.take(np.arange(8))))
    assert max(reads) <= kw["block_size"] * 2  # whole blocks at a time, never the store


def test_global_torch_state_is_left_alone(data):
    X, y = data
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    Conv1dInverter(head="latent-noise", max_epochs=1, **CONV).fit(X, y)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_latent_noise_spread_grows_with_the_scale(data, noise_model):
    X, _ = data
    m = noise_model
    assert m.noise_scale_ > 0
    spread = [m.sample(X[:16], 32, random_state=0, noise_scale=s).std(axis=1).mean() for s in (0.0, 0.3, 3.0)]
    assert spread[0] == 0 and 0 < spread[1] < spread[2]
    np.testing.assert_allclose(m.sample(X[:4], 2, noise_scale=0.0)[:, 0], m.predict(X[:4]), atol=1e-6)
    assert m.sample(X[:16], 32, random_state=0).std(axis=1).mean() > 0


def test_flow_spreads_over_an_unidentifiable_parameter(flow_model):
    X, y = toy(64, seed=1)
    m = flow_model
    s = m.sample(X, 64, random_state=0)
    assert 0 <= s.min() and s.max() <= 1
    spread = s.std(axis=1).mean(axis=0)  # per parameter
    # y2 does not change the sound: its draws spread like the prior (std 0.29), far wider than y0's
    assert spread[2] > 0.15 and spread[2] > 1.5 * spread[0]
    assert abs(m.calibration_coverage_ - 0.8) < 0.15
    assert 0.55 < coverage(y, s) < 0.98
    hot = m.sample(X[:16], 32, random_state=0, noise_scale=2 * m.noise_scale_).std(axis=1).mean()
    assert hot > s[:16].std(axis=1).mean()


def test_a_flow_model_also_samples_by_latent_noise(data, flow_model, noise_model):
    X, y = toy(64, seed=1)
    m = flow_model
    assert set(m.noise_scales_) == {"flow", "latent-noise"} and set(noise_model.noise_scales_) == {"latent-noise"}
    flow = m.sample(X, 64, random_state=0)
    try:
        m.set_params(sampler="latent-noise")
        latent = m.sample(X, 64, random_state=0)
        # the point head decodes perturbed latents: spread around the point estimate, calibrated too
        np.testing.assert_allclose(m.sample(X[:4], 2, noise_scale=0.0)[:, 0], m.predict(X[:4]), atol=1e-6)
    finally:
        m.set_params(sampler=None)
    assert not np.allclose(latent, flow) and latent.std(axis=1).mean() > 0
    assert 0.5 < coverage(y, latent) < 0.98
    np.testing.assert_array_equal(m.sample(X, 64, random_state=0), flow)  # back to the flow
    with pytest.raises(InputError, match="trained with that head"):
        noise_model.set_params(sampler="flow").sample(data[0][:2], 2)
    noise_model.set_params(sampler=None)


class _Interrupted(Conv1dInverter):
    """Raises KeyboardInterrupt at the start of epoch ``stop_at`` (like Ctrl-C)."""

    stop_at = 2

    def epoch_batches(self, loader, rng):
        self.epochs_started = getattr(self, "epochs_started", 0) + 1
        if self.epochs_started > self.stop_at:
            raise KeyboardInterrupt
        return super().epoch_batches(loader, rng)


def test_resume_after_an_interrupt_equals_an_uninterrupted_fit(data, tmp_path):
    X, y = data
    kw = dict(head="flow", max_epochs=4, patience=10, **CONV)
    ckpt = tmp_path / "fit.ckpt"
    whole = Conv1dInverter(**kw).fit(X, y)
    with pytest.raises(KeyboardInterrupt):
        _Interrupted(checkpoint=str(ckpt), **kw).fit(X, y)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed = Conv1dInverter(checkpoint=str(ckpt), **kw).fit(X, y)
    assert resumed.n_epochs_ == 4 and resumed.history_ == whole.history_
    for k, v in whole.net_.state_dict().items():
        assert torch.equal(v, resumed.net_.state_dict()[k]), k
    # a finished checkpoint refits to the same model; another fit's checkpoint is refused
    again = Conv1dInverter(checkpoint=str(ckpt), **kw).fit(X, y)
    np.testing.assert_array_equal(again.predict(X[:5]), whole.predict(X[:5]))
    with pytest.raises(ModelError, match="another fit"):
        Conv1dInverter(checkpoint=str(ckpt), **{**kw, "lr": 0.01}).fit(X, y)


def test_max_time_stops_and_a_later_fit_resumes(data, tmp_path):
    X, y = data
    ckpt = tmp_path / "t.ckpt"
    kw = dict(head="latent-noise", max_epochs=3, patience=10, checkpoint=str(ckpt), **CONV)
    cut = Conv1dInverter(max_time=0.0, **kw).fit(X, y)
    assert cut.fit_stats_["stopped"] == "max_time" and cut.n_epochs_ == 0
    assert cut.predict(X[:2]).shape == (2, 3)  # usable, though barely trained
    done = Conv1dInverter(**kw).fit(X, y)
    assert done.n_epochs_ == 3


@pytest.mark.parametrize("bad", [-1, -0.5, "60", float("nan"), float("inf"), True])
def test_a_max_time_that_is_no_number_of_seconds_is_refused_before_training(data, bad):
    X, y = data
    with pytest.raises(InputError, match="max_time must be a number of seconds >= 0"):
        Conv1dInverter(max_time=bad, **CONV).fit(X, y)


def test_joblib_round_trip_in_a_fresh_process(data, flow_model, tmp_path):
    X, _ = data
    path = tmp_path / "m.joblib"
    joblib.dump(flow_model, path)
    np.save(tmp_path / "x.npy", X[:6])
    code = textwrap.dedent(
        f"""
        import joblib, numpy as np
        m = joblib.load({str(path)!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "p.npy")!r}, m.predict(x))
        np.save({str(tmp_path / "s.npy")!r}, m.sample(x, 4, random_state=0))
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), flow_model.predict(X[:6]), atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), flow_model.sample(X[:6], 4, random_state=0), atol=1e-5)
    state = flow_model.__getstate__()  # what a pickle holds: no live network, every tensor on the CPU
    held = tensors_in(state)
    assert "net_" not in state and held and all(t.device.type == "cpu" for t in held)


def tensors_in(value) -> list[torch.Tensor]:
    """Every tensor inside ``value``, through dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


def test_block_loader_reads_every_row_once_in_bounded_blocks():
    X = np.arange(100, dtype=np.float32)[:, None].repeat(3, axis=1)
    y = np.zeros((100, 2), dtype=np.float32)
    blocks = [np.arange(s, min(s + 10, 100)) for s in range(0, 100, 10)]
    loader = BlockLoader(X, y, blocks, batch_size=8, buffer_blocks=2)
    seen = np.concatenate([xb[:, 0].numpy() for xb, _ in loader.iterate(np.random.default_rng(0))])
    assert sorted(seen.astype(int)) == list(range(100))
    assert not np.array_equal(seen, np.arange(100))
    ordered = np.concatenate([xb[:, 0].numpy() for xb, _ in loader.iterate(None)])
    np.testing.assert_array_equal(ordered, np.arange(100))
    # stopping early leaves no thread behind
    next(iter(loader.iterate(None)))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"head": "gan"}, "head"),
        ({"sampler": "gan"}, "sampler"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"noise_scale": -1}, "noise_scale"),
        ({"device": "tpu9"}, "device"),
        ({"channels": ()}, "channels"),
    ],
)
def test_bad_hyper_parameters_raise_input_error(data, kw, match):
    X, y = data
    with pytest.raises(InputError, match=match):
        Conv1dInverter(**{**CONV, "max_epochs": 1, **kw}).fit(X[:40], y[:40])


def test_bad_inputs_raise_input_error(data, noise_model):
    X, y = data
    with pytest.raises(InputError):
        Conv1dInverter(**CONV).fit(X[:40], np.where(y[:40] > 0.9, np.nan, y[:40]))
    with pytest.raises(InputError):
        SpecCNNInverter(**{**SPEC, "frontend": {**FRONTEND, "n_samples": 2048}}).fit(X[:40], y[:40])
    with pytest.raises(InputError):
        noise_model.predict(X[:3, :500])
    with pytest.raises(InputError):
        noise_model.sample(X[:3], 0)
