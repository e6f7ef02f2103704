"""Every metric against values computed by hand (or by an independent formula)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from wavinv.errors import InputError
from wavinv.metrics import coverage, diversity, lsd_db, mrstft, param_mae


def test_lsd_db_rms_over_frequency_then_mean_over_frames():
    ref = np.zeros((2, 2))
    est = np.array([[1.0, 3.0], [1.0, 4.0]])  # frame 0: rms(1, 1) = 1; frame 1: rms(3, 4) = sqrt(12.5)
    assert lsd_db(ref, est) == pytest.approx((1 + np.sqrt(12.5)) / 2)
    assert lsd_db(est, est) == 0.0


def test_lsd_db_broadcasts_one_target_against_many_candidates():
    rng = np.random.default_rng(0)
    target, candidates = rng.normal(size=(8, 5)), rng.normal(size=(4, 8, 5))
    got = lsd_db(target, candidates)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, [lsd_db(target, c) for c in candidates])
    np.testing.assert_allclose(lsd_db(torch.from_numpy(target), torch.from_numpy(candidates)).numpy(), got)
    with pytest.raises(InputError):
        lsd_db(np.zeros(3), np.zeros(3))


def _mrstft_reference(ref: np.ndarray, est: np.ndarray, n_fft: int) -> float:
    """One resolution written out: zero-padded frames, periodic Hann, rfft."""
    hop, pad = n_fft // 4, n_fft // 2
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)

    def mag(x):
        x = np.pad(x, pad)
        frames = np.stack([x[s : s + n_fft] for s in range(0, len(x) - n_fft + 1, hop)])
        return np.sqrt(np.maximum(np.abs(np.fft.rfft(frames * window, axis=1)) ** 2, 1e-7))

    r, e = mag(ref), mag(est)
    return np.linalg.norm(r - e) / np.linalg.norm(r) + np.mean(np.abs(np.log(r) - np.log(e)))


def test_mrstft_matches_a_written_out_single_resolution():
    rng = np.random.default_rng(1)
    ref, est = rng.normal(size=64), rng.normal(size=64)
    assert mrstft(ref, est, fft_sizes=(16,)) == pytest.approx(_mrstft_reference(ref, est, 16), rel=1e-9)
    both = (_mrstft_reference(ref, est, 16) + _mrstft_reference(ref, est, 8)) / 2
    assert mrstft(ref, est, fft_sizes=(16, 8)) == pytest.approx(both, rel=1e-9)


def test_mrstft_known_values_and_broadcasting():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=4096)
    assert mrstft(ref, ref) == 0.0
    assert mrstft(np.zeros(512), np.zeros(512)) == 0.0
    # Twice the amplitude: spectral convergence 1, log-magnitude difference ln 2.
    assert mrstft(ref, 2 * ref) == pytest.approx(1 + np.log(2), abs=1e-3)
    candidates = np.stack([ref, 2 * ref, rng.normal(size=4096)])
    got = mrstft(ref, candidates)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, [mrstft(ref, c) for c in candidates])


def test_mrstft_on_torch_tensors_is_differentiable():
    ref = torch.randn(2048, dtype=torch.float64)
    est = (0.5 * ref).requires_grad_()
    loss = mrstft(ref, est)
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    assert est.grad is not None and torch.isfinite(est.grad).all()
    assert float(loss.detach()) == pytest.approx(mrstft(ref.numpy(), 0.5 * ref.numpy()))
    with pytest.raises(InputError):
        mrstft(np.zeros(100), np.zeros(99))


def test_param_mae_overall_per_row_and_per_parameter():
    y_true = np.array([[0.0, 1.0], [0.5, 0.5]])
    y_pred = np.array([[0.5, 0.5], [0.5, 0.0]])  # |diff| = [[.5, .5], [0, .5]]
    assert param_mae(y_true, y_pred) == pytest.approx(0.375)
    np.testing.assert_allclose(param_mae(y_true, y_pred, axis=-1), [0.5, 0.25])
    np.testing.assert_allclose(param_mae(y_true, y_pred, axis=0), [0.25, 0.5])
    candidates = np.stack([y_pred, y_true], axis=1)  # (N, K, P)
    np.testing.assert_allclose(param_mae(y_true[:, None], candidates, axis=-1), [[0.5, 0.0], [0.25, 0.0]])


def test_diversity_by_hand_and_by_brute_force():
    cands = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])  # pair means: 0.5, 0.75, 0.75
    assert diversity(cands) == pytest.approx(2 / 3)
    rng = np.random.default_rng(3)
    batch = rng.random((4, 7, 5))
    brute = [np.mean([np.abs(a - b).mean() for a, b in itertools.combinations(c, 2)]) for c in batch]
    np.testing.assert_allclose(diversity(batch), brute)
    assert diversity(np.ones((1, 3))) == 0.0
    assert diversity(rng.random((400, 50))) == pytest.approx(1 / 3, abs=0.01)
    with pytest.raises(InputError):
        diversity(np.zeros(3))


def test_coverage_of_the_central_interval():
    samples = np.tile(np.linspace(0, 1, 11)[None, :, None], (5, 1, 1))  # 10% and 90% quantiles: 0.1, 0.9
    y = np.array([[0.05], [0.1], [0.5], [0.9], [0.95]])
    assert coverage(y, samples) == pytest.approx(0.6)
    assert coverage(y, samples, level=0.99) == pytest.approx(1.0)
    two = np.concatenate([samples, samples], axis=2)
    np.testing.assert_allclose(coverage(np.hstack([y, np.full((5, 1), 0.5)]), two, axis=0), [0.6, 1.0])
    with pytest.raises(InputError):
        coverage(y, samples, level=1.0)
    with pytest.raises(InputError):
        coverage(y[:4], samples)
