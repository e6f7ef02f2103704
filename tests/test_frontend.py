"""The spectrogram frontend: shapes, levels, backends, autograd, the numpy and scikit-learn wrappers, errors."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest
import torch
from scipy.signal import get_window
from sklearn.base import clone

from wavinv.errors import InputError
from wavinv.frontend import (
    Spectrogram,
    SpectrogramTransformer,
    default_batch_size,
    default_device,
    frontend_config,
    resolve_backend,
    spectrogram,
)
from wavinv.lazy import LazyArray

SR = 16000
T = 4000  # short clips keep the tests fast; the default 16352 is tested once
SMALL = {"n_samples": T, "n_freq": 64, "n_frames": 50}
KIND_BACKENDS = [("stft", "torch"), ("stft", "nnaudio"), ("mel", "torch"), ("mel", "nnaudio"), ("cqt", "nnaudio")]

# Backends agree to float32 rounding. Rounding noise in the magnitude is about 1e-7 of full
# scale (-140 dB): 40 dB above the -100 dB floor it moves a level by under 1e-3 dB; right at
# the floor by up to ~0.1 dB. Both bounds have 10x margin over what was measured.
AGREE_DB_LOUD = 0.01  # where both read above -60 dB
AGREE_DB_ALL = 0.5


def sine(freq: float, n: int = T, amp: float = 1.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def clips(n: int = T) -> np.ndarray:
    """Sine, noise, silence, a decaying two-tone: levels from 0 dB down to the floor."""
    rng = np.random.default_rng(0)
    t = np.arange(n) / SR
    return np.stack(
        [
            sine(1000.0, n),
            0.1 * rng.standard_normal(n),
            np.zeros(n),
            (0.5 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.sin(2 * np.pi * 3300 * t)) * np.exp(-8 * t),
        ]
    ).astype(np.float32)


def run(module: Spectrogram, x: np.ndarray, device) -> np.ndarray:
    module = module.to(device)
    with torch.no_grad():
        return module(torch.from_numpy(x).to(device)).cpu().numpy()


def numpy_stft_db(x: np.ndarray, n_fft: int, hop: int, n_freq: int, amin: float = 1e-5) -> np.ndarray:
    """Reference: centred reflect-padded Hann frames, rfft, magnitude over n_fft / 4, 20 log10."""
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spec = np.abs(np.fft.rfft(frames * get_window("hann", n_fft), axis=-1))[:, :n_freq].T
    return 20 * np.log10(np.maximum(spec / (n_fft / 4), amin))


def test_default_is_512_by_512(device):
    m = Spectrogram()
    cfg = m.config()
    assert (cfg["sample_rate"], cfg["n_samples"], cfg["n_fft"], cfg["hop_length"]) == (16000, 16352, 1024, 32)
    out = run(m, 0.1 * np.random.default_rng(1).standard_normal((2, 16352)).astype(np.float32), device)
    assert out.shape == (2, 512, 512) and out.dtype == np.float32
    assert m.output_shape == (512, 512) and (m.n_freq, m.n_frames) == (512, 512)


@pytest.mark.parametrize("kind", ["stft", "mel", "cqt"])
@pytest.mark.parametrize("n_samples,n_freq,n_frames", [(T, 64, 50), (T, 100, 37), (1000, 32, 1200)])
def test_configurable_shapes_are_exact(kind, n_samples, n_freq, n_frames, device):
    m = Spectrogram(n_samples=n_samples, n_freq=n_freq, n_frames=n_frames, kind=kind)
    out = run(m, clips(n_samples), device)
    assert out.shape == (4, n_freq, n_frames) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= m.floor_db
    assert len(m.frequencies) == n_freq and np.all(np.diff(m.frequencies) > 0)
    natural = 1 + n_samples // m.config()["hop_length"]
    if natural < n_frames:  # frames past the clip's end are padded with the floor
        assert np.all(out[:, :, natural:] == m.floor_db) and np.any(out[:, :, :natural] > m.floor_db)


@pytest.mark.parametrize("kind", ["stft", "mel"])
def test_backends_agree(kind, device):
    x = clips()
    a = run(Spectrogram(**SMALL, kind=kind, backend="torch"), x, device)
    b = run(Spectrogram(**SMALL, kind=kind, backend="nnaudio"), x, device)
    loud = np.minimum(a, b) > -60
    assert loud.mean() > 0.2  # the comparison covers real content, not just the floor
    assert np.abs(a - b)[loud].max() < AGREE_DB_LOUD
    assert np.abs(a - b).max() < AGREE_DB_ALL


@pytest.mark.parametrize("backend", ["torch", "nnaudio"])
def test_stft_matches_numpy_reference(backend, device):
    m = Spectrogram(**SMALL, backend=backend)
    cfg = m.config()
    x = clips()
    ref = np.stack([numpy_stft_db(c, cfg["n_fft"], cfg["hop_length"], cfg["n_freq"]) for c in x])[..., : cfg["n_frames"]]
    out = run(m, x, device)
    loud = ref > -60
    assert np.abs(out - ref)[loud].max() < AGREE_DB_LOUD
    assert np.abs(out - ref).max() < AGREE_DB_ALL


@pytest.mark.parametrize("kind", ["stft", "mel", "cqt"])
def test_full_scale_sine_reads_about_0_db_at_its_frequency(kind, device):
    m = Spectrogram(n_samples=8000, n_freq=128, n_frames=40, kind=kind)
    freqs = m.frequencies
    k = int(np.argmin(np.abs(freqs - 2000.0)))
    out = run(m, sine(freqs[k], 8000)[None], device)[0]
    steady = out[:, 5:-5]  # away from the reflect-padded edges
    assert np.all(steady.argmax(axis=0) == k)
    # stft / cqt: at a bin's own frequency the normalisation is exact; mel: triangles of peak 1
    # sum the window's main lobe (up to +1.8 dB for Hann) and a band centre may sit between bins
    tol = 2.0 if kind == "mel" else 0.05
    assert np.abs(steady.max(axis=0)).max() < tol
    # half amplitude reads 6 dB less
    half = run(m, sine(freqs[k], 8000, amp=0.5)[None], device)[0][:, 5:-5]
    np.testing.assert_allclose(half.max(axis=0) - steady.max(axis=0), 20 * np.log10(0.5), atol=1e-3)


def test_silence_reads_the_floor(device):
    assert np.all(run(Spectrogram(**SMALL), np.zeros((1, T), np.float32), device) == -100.0)
    m = Spectrogram(**SMALL, amin=1e-3)
    assert m.floor_db == pytest.approx(-60.0)
    assert np.all(run(m, np.zeros((1, T), np.float32), device) == pytest.approx(-60.0))


@pytest.mark.parametrize("kind,backend", KIND_BACKENDS)
def test_autograd_gives_finite_gradients_even_through_silence(kind, backend, device):
    m = Spectrogram(**SMALL, kind=kind, backend=backend).to(device)
    x = torch.from_numpy(clips()).to(device).requires_grad_()
    m(x).mean().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[0].abs().sum() > 0 and x.grad[1].abs().sum() > 0
    with torch.no_grad():
        assert not m(x).requires_grad


def test_trainable_kernels_get_gradients(device):
    m = Spectrogram(**SMALL, backend="nnaudio", trainable=True).to(device)
    params = list(m.parameters())
    assert params and all(p.requires_grad for p in params)
    m(torch.from_numpy(clips()).to(device)).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert set(m.state_dict()) == {"_nnaudio.wsin", "_nnaudio.wcos"}  # trained kernels are saved
    assert Spectrogram(**SMALL, backend="nnaudio").state_dict() == {}  # fixed ones are rebuilt from the config


def test_config_round_trips_through_json(device):
    m = Spectrogram(**SMALL, kind="mel", fmin=50.0, amin=1e-4)
    cfg = json.loads(json.dumps(m.config()))
    again = Spectrogram.from_config(cfg)
    assert again.config() == m.config() == cfg
    assert set(cfg) >= {"kind", "sample_rate", "n_samples", "n_freq", "n_frames", "n_fft", "hop_length", "amin", "backend"}
    x = clips()
    assert run(again, x, device).tobytes() == run(m, x, device).tobytes()
    assert frontend_config(**SMALL, kind="mel", fmin=50.0, amin=1e-4) == cfg
    with pytest.raises(InputError, match="unknown frontend config keys: colour"):
        Spectrogram.from_config({**cfg, "colour": "blue"})
    with pytest.raises(InputError, match="must be a dict"):
        Spectrogram.from_config("stft")


def test_mel_fft_size_leaves_no_empty_band():
    assert frontend_config(kind="mel")["n_fft"] == 2048  # 1024 would leave 47 of 512 bands empty
    assert frontend_config(kind="stft")["n_fft"] == 1024
    cqt = frontend_config(kind="cqt")
    assert (cqt["n_fft"], cqt["fmin"], cqt["fmax"]) == (4096, 32.7, 8000.0)


def test_same_result_on_device_as_on_cpu(device):
    if torch.device(device).type == "cpu":
        pytest.skip("needs --device other than cpu")
    x = clips()
    for kind in ("stft", "mel", "cqt"):
        m = Spectrogram(**SMALL, kind=kind)
        cpu, dev = run(m, x, "cpu"), run(m, x, device)
        loud = np.minimum(cpu, dev) > -60
        assert np.abs(cpu - dev)[loud].max() < AGREE_DB_LOUD and np.abs(cpu - dev).max() < AGREE_DB_ALL


def test_backend_choice():
    assert resolve_backend("auto", "stft", "cpu") == "torch"
    assert resolve_backend("auto", "mel", "cuda") == "nnaudio"
    assert resolve_backend("auto", "cqt", "cpu") == "nnaudio"
    assert resolve_backend("torch", "stft", "cuda") == "torch"
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_deterministic_and_batch_independent(device):
    x = np.concatenate([clips()] * 3)
    for kind in ("stft", "mel", "cqt"):
        m = Spectrogram(**SMALL, kind=kind)
        first = spectrogram(x, m, batch_size=5, device=device)
        assert first.tobytes() == spectrogram(x, m, batch_size=5, device=device).tobytes()
        # other batch sizes change only float rounding in the convolutions
        np.testing.assert_allclose(spectrogram(x, m, batch_size=12, device=device), first, atol=1e-3)


@pytest.mark.parametrize("kind", ["stft", "mel"])
def test_every_nth_frame_computes_exactly_those_columns(kind, device):
    m = Spectrogram(**SMALL, kind=kind)
    for step in (2, 3, 8):
        coarse = m.every_nth_frame(step)
        assert coarse.output_shape == (m.n_freq, -(-m.n_frames // step))
        np.testing.assert_allclose(run(coarse, clips(), device), run(m, clips(), device)[..., ::step], atol=1e-4)
    with pytest.raises(InputError, match="stft"):
        Spectrogram(**SMALL, kind="cqt").every_nth_frame(2)


def test_default_batch_size_is_small_on_cpu():
    assert default_batch_size("cpu") == 4
    assert default_batch_size("cuda") == 64


@pytest.mark.parametrize("kind", ["stft", "mel"])
def test_a_batch_gives_exactly_its_clips_one_at_a_time(kind, device):
    # on CPU the module works CPU_BATCH clips at a time: chunking must not change a value
    m = Spectrogram(**SMALL, kind=kind)
    x = np.concatenate([clips()] * 3)  # 12 clips: more than one chunk
    whole = run(m, x, device)
    np.testing.assert_array_equal(whole, np.concatenate([run(m, x[i : i + 1], device) for i in range(len(x))]))


def test_numpy_function(device):
    x = clips()
    m = Spectrogram(**SMALL)
    out = spectrogram(x, m.config(), batch_size=3, device=device)
    assert out.shape == (4, 64, 50) and out.dtype == np.float32
    np.testing.assert_array_equal(out, run(m, x, device))
    one = spectrogram(x[1].astype(np.float64), m, device=device)
    assert one.shape == (64, 50)
    np.testing.assert_allclose(one, out[1], atol=1e-3)
    lazy = LazyArray(4, (T,), np.float32, lambda idx: x[idx])
    np.testing.assert_allclose(spectrogram(lazy, m, batch_size=3, device=device), out, atol=1e-3)
    assert spectrogram(x[:0], m, device=device).shape == (0, 64, 50)


def test_transformer_contract(tmp_path, device):
    x = clips()
    tr = SpectrogramTransformer(**SMALL, batch_size=3, device=device)
    params = tr.get_params()
    assert params["n_freq"] == 64 and params["device"] == device and params["kind"] == "stft"
    c = clone(tr)
    assert c.get_params() == params and not hasattr(c, "frontend_config_")
    assert tr.fit(x) is tr and tr.frontend_config_["n_fft"] == 128 and tr.n_features_in_ == T
    out = tr.transform(x)
    np.testing.assert_array_equal(out, spectrogram(x, frontend_config(**SMALL), device=device))
    np.testing.assert_array_equal(tr.fit_transform(x), out)
    np.testing.assert_array_equal(clone(tr).transform(x), out)  # stateless: transform needs no fit
    lazy = LazyArray(4, (T,), np.float32, lambda idx: x[idx])
    np.testing.assert_allclose(tr.transform(lazy), out, atol=1e-3)

    path = tmp_path / "tr.joblib"
    joblib.dump(tr, path)
    loaded = joblib.load(path)
    assert loaded.get_params() == params
    np.testing.assert_array_equal(loaded.transform(x), out)

    tr.set_params(n_freq=32, kind="mel")
    assert tr.transform(x).shape == (4, 32, 50)


@pytest.mark.parametrize(
    "x,match",
    [
        (np.zeros((2, 3, T), np.float32), r"shape \(N, T\)"),
        (np.zeros((2, T + 1), np.float32), "4001 samples, the frontend expects 4000"),
        (np.full((2, T), np.nan, np.float32), "NaN or Inf"),
        (np.full((2, T), np.inf, np.float32), "NaN or Inf"),
        (np.zeros((2, T), np.int16), "floating point"),
    ],
)
def test_bad_waveforms(x, match):
    with pytest.raises(InputError, match=match):
        spectrogram(x, frontend_config(**SMALL), device="cpu")


def test_bad_tensors():
    m = Spectrogram(**SMALL)
    with pytest.raises(InputError, match="torch tensor"):
        m(np.zeros((1, T), np.float32))
    with pytest.raises(InputError, match=r"shape \(B, 4000\)"):
        m(torch.zeros(T))
    with pytest.raises(InputError, match=r"shape \(B, 4000\)"):
        m(torch.zeros(1, T - 1))
    with pytest.raises(InputError, match="floating point"):
        m(torch.zeros(1, T, dtype=torch.int32))
    with pytest.raises(InputError, match="NaN or Inf"):
        m(torch.full((1, T), float("nan")))
    with pytest.raises(InputError, match="frontend is on cpu"):
        m(torch.zeros(1, T, device="meta"))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "wavelet"}, "kind must be one of"),
        ({"backend": "jax"}, "backend must be one of"),
        ({"kind": "cqt", "backend": "torch"}, "only the nnAudio backend"),
        ({"trainable": True}, "trainable kernels need backend='nnaudio'"),
        ({"fmin": 20.0}, "apply to kind='mel' and 'cqt' only"),
        ({"kind": "mel", "fmax": 9000.0}, "fmax <= sample_rate / 2"),
        ({"kind": "cqt", "fmin": 0.0}, "fmin > 0"),
        ({"n_freq": 0}, "n_freq must be >= 1"),
        ({"n_frames": True}, "n_frames must be an integer"),
        ({"n_freq": 2.5}, "n_freq must be an integer"),
        ({"amin": 0.0}, r"amin must be in \(0, 1\)"),
        ({"n_freq": 4000}, "too long for 4000-sample clips"),
        ({"kind": "cqt", "n_fft": 5000}, "too long for 4000-sample clips"),  # kernels padded to 8192
        ({"n_fft": 64, "n_freq": 64}, "has only 33 bins"),
        ({"kind": "mel", "n_freq": 3000}, "too narrow"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(InputError, match=match):
        frontend_config(**{**SMALL, **kwargs})


def test_transformer_rejects_bad_settings_x_and_device():
    with pytest.raises(InputError, match="kind must be one of"):
        SpectrogramTransformer(**SMALL, kind="wavelet").fit(np.zeros((2, T), np.float32))
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        SpectrogramTransformer(**SMALL, batch_size=0).fit(np.zeros((2, T), np.float32))
    with pytest.raises(InputError, match=r"X must have shape \(N, 4000\)"):
        SpectrogramTransformer(**SMALL).fit(np.zeros((2, 10), np.float32))
    with pytest.raises(InputError, match=r"X must have shape \(N, 4000\)"):
        SpectrogramTransformer(**SMALL).transform(np.zeros(T, np.float32))
    with pytest.raises(InputError, match="device"):
        SpectrogramTransformer(**SMALL, device="tpu9").fit(np.zeros((2, T), np.float32))
