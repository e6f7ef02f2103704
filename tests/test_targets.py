"""Target files: WAV (resampled with a warning), NPY waveform or spectrogram, PNG spectrogram; every bad file is an InputError."""

import logging

import numpy as np
import pytest
import soundfile as sf

from wavinv import InputError, OutputError
from wavinv.targets import load_target, save_spectrogram_png, save_wav

SR, N = 16000, 4096


def test_wav_round_trip(tmp_path):
    wave = (0.5 * np.sin(2 * np.pi * 440 * np.arange(N) / SR)).astype(np.float32)
    save_wav(wave, tmp_path / "a.wav", SR)
    t = load_target(tmp_path / "a.wav", SR, N)
    assert t.kind == "waveform" and t.data.shape == (N,)
    np.testing.assert_allclose(t.data, wave, atol=1 / 32767 + 1e-6)


def test_wav_at_another_rate_is_resampled_with_a_warning(tmp_path, caplog):
    wave = np.sin(2 * np.pi * 440 * np.arange(2 * N) / (2 * SR)).astype(np.float32)
    sf.write(tmp_path / "b.wav", wave, 2 * SR)
    with caplog.at_level(logging.WARNING):
        t = load_target(tmp_path / "b.wav", SR, N)
    assert "resampling" in caplog.text and t.data.shape == (N,)
    spectrum = np.abs(np.fft.rfft(t.data))
    assert abs(np.argmax(spectrum) * SR / N - 440) < 2 * SR / N


def test_wrong_length_is_refused_unless_padding_asked(tmp_path):
    sf.write(tmp_path / "c.wav", np.zeros(100, dtype=np.float32), SR)
    with pytest.raises(InputError, match="100 samples"):
        load_target(tmp_path / "c.wav", SR, N)
    assert load_target(tmp_path / "c.wav", SR, N, pad=True).data.shape == (N,)


def test_truncated_wav(tmp_path):
    save_wav(np.zeros(N, dtype=np.float32), tmp_path / "d.wav", SR)
    data = (tmp_path / "d.wav").read_bytes()
    (tmp_path / "e.wav").write_bytes(data[:30])
    with pytest.raises(InputError, match="not a readable WAV"):
        load_target(tmp_path / "e.wav", SR, N)


def test_npy_waveform_and_spectrogram(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros(N, dtype=np.float32))
    np.save(tmp_path / "s.npy", np.full((8, 6), -40.0, dtype=np.float32))
    assert load_target(tmp_path / "w.npy", SR, N).kind == "waveform"
    t = load_target(tmp_path / "s.npy", SR, N, spec_shape=(8, 6))
    assert t.kind == "spectrogram" and t.data.shape == (8, 6)
    with pytest.raises(InputError, match=r"shape \(8, 6\)"):
        load_target(tmp_path / "s.npy", SR, N, spec_shape=(512, 512))


@pytest.mark.parametrize(
    "array, match",
    [
        (np.array([0.0, np.nan] * (N // 2), dtype=np.float32), "NaN"),
        (np.zeros((2, 3, 4), dtype=np.float32), "expected a waveform"),
        (np.array([], dtype=np.float32), "empty"),
        (np.array(["a", "b"]), "numeric"),
    ],
)
def test_bad_npy(tmp_path, array, match):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(InputError, match=match):
        load_target(tmp_path / "x.npy", SR, N)


def test_png_round_trip_low_frequencies_at_the_bottom(tmp_path):
    spec = np.linspace(-100, 0, 16 * 12, dtype=np.float32).reshape(16, 12)
    save_spectrogram_png(spec, tmp_path / "s.png")
    back = load_target(tmp_path / "s.png", SR, N, spec_shape=(16, 12)).data
    np.testing.assert_allclose(back, spec, atol=100 / 255 / 2 + 1e-4)
    # a custom dB range maps the same pixels to other values
    other = load_target(tmp_path / "s.png", SR, N, db_range=(-80.0, 0.0)).data
    assert other.min() == pytest.approx(-80.0)


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_bad_png(tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(InputError, match="not a readable image"):
        load_target(tmp_path / "bad.png", SR, N)


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_target(tmp_path / "nope.wav", SR, N)
    (tmp_path / "x.mp3").write_bytes(b"ID3")
    with pytest.raises(InputError, match="unsupported"):
        load_target(tmp_path / "x.mp3", SR, N)


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    from PIL import Image

    save_spectrogram_png(np.zeros((4, 4)), tmp_path / "s.png")
    before = (tmp_path / "s.png").read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        open(fp, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="disk full"):  # one line for the user, not a traceback
        save_spectrogram_png(np.full((4, 4), -50.0), tmp_path / "s.png")
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]
    assert (tmp_path / "s.png").read_bytes() == before
    with pytest.raises(InputError, match="low < high"):
        save_spectrogram_png(np.zeros((4, 4)), tmp_path / "t.png", db_range=(0.0, 0.0))
