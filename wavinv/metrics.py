"""Metrics: one definition each, used by the inverter, the benchmark and the tests.

Spectral distances compare a target with candidates and broadcast over leading
axes, so one target against ``M`` candidates is one call::

    lsd_db(S_target, S_candidates)        # (F, T) vs (M, F, T) -> (M,)
    mrstft(w_target, w_candidates)        # (T,) vs (M, T) -> (M,)

Parameter metrics work on unit-scaled parameters (every parameter in [0, 1]),
so a value means the same thing for every parameter whatever its natural units.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import InputError

__all__ = ["lsd_db", "mrstft", "param_mae", "diversity", "coverage"]


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def lsd_db(S_ref, S_est):
    """Log-spectral distance in dB between dB spectrograms ``(..., F, T)``.

    RMS of the difference over frequency, then the mean over frames. Leading axes
    broadcast: ``(F, T)`` vs ``(M, F, T)`` gives ``(M,)``; two ``(F, T)`` give a scalar.
    Works on numpy arrays and torch tensors (and returns the same kind).
    """
    if _is_torch(S_ref) or _is_torch(S_est):
        import torch

        d = torch.as_tensor(S_ref) - torch.as_tensor(S_est)
        if d.ndim < 2:
            raise InputError(f"lsd_db needs spectrograms (..., F, T), got shape {tuple(d.shape)}")
        return d.square().mean(dim=-2).sqrt().mean(dim=-1)
    ref, est = np.asarray(S_ref), np.asarray(S_est)
    shape = np.broadcast_shapes(ref.shape, est.shape)
    if len(shape) < 2:
        raise InputError(f"lsd_db needs spectrograms (..., F, T), got shape {shape}")
    ref = np.broadcast_to(ref, shape).reshape(-1, *shape[-2:])
    est = np.broadcast_to(est, shape).reshape(-1, *shape[-2:])
    out = np.empty(len(ref))
    # a few spectrograms at a time: the float64 differences stay in cache (256 at once is half a GB)
    for a in range(0, len(ref), 8):
        d = ref[a : a + 8].astype(np.float64) - est[a : a + 8].astype(np.float64)
        out[a : a + 8] = np.sqrt(np.mean(d * d, axis=-2)).mean(axis=-1)
    out = out.reshape(shape[:-2])
    return out if out.ndim else float(out)


def mrstft(
    w_ref,
    w_est,
    fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128),
    hop_fraction: float = 0.25,
    eps: float = 1e-7,
):
    """Multi-resolution STFT distance between waveforms ``(..., T)``.

    For each FFT size ``n`` (Hann window of ``n`` samples, hop ``n * hop_fraction``,
    zero padding at both ends): spectral convergence ``||R - E||_F / ||R||_F`` plus
    the mean absolute difference of natural-log magnitudes, where magnitudes are
    ``sqrt(max(|STFT|^2, eps))`` (as in auraloss). The result is the average over
    resolutions; 0 means identical. Independent of any model's frontend.

    Leading axes broadcast: ``(T,)`` vs ``(M, T)`` gives ``(M,)``. numpy in, numpy
    out; torch in, torch out (differentiable).
    """
    import torch

    as_torch = _is_torch(w_ref) or _is_torch(w_est)
    ref = torch.as_tensor(w_ref) if as_torch else torch.from_numpy(np.asarray(w_ref, dtype=np.float64))
    est = torch.as_tensor(w_est) if as_torch else torch.from_numpy(np.asarray(w_est, dtype=np.float64))
    if ref.ndim < 1 or est.ndim < 1 or ref.shape[-1] != est.shape[-1]:
        raise InputError(f"mrstft needs waveforms of the same length (..., T), got {tuple(ref.shape)} and {tuple(est.shape)}")
    if not fft_sizes:
        raise InputError("mrstft needs at least one FFT size")
    dtype = torch.promote_types(ref.dtype, est.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    ref, est = torch.broadcast_tensors(ref.to(dtype), est.to(dtype))
    lead = ref.shape[:-1]
    both = torch.cat([ref.reshape(-1, ref.shape[-1]), est.reshape(-1, est.shape[-1])])
    total = 0.0
    for n_fft in fft_sizes:
        n_fft = int(n_fft)
        window = torch.hann_window(n_fft, dtype=dtype, device=both.device)
        spec = torch.stft(
            both,
            n_fft=n_fft,
            hop_length=max(1, int(n_fft * hop_fraction)),
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        mag = torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=eps))
        r, e = mag.chunk(2)
        sc = torch.linalg.norm(r - e, dim=(-2, -1)) / torch.linalg.norm(r, dim=(-2, -1))
        log_l1 = (torch.log(r) - torch.log(e)).abs().mean(dim=(-2, -1))
        total = total + sc + log_l1
    out = (total / len(fft_sizes)).reshape(lead)
    if as_torch:
        return out
    out = out.numpy()
    return out if out.ndim else float(out)


def param_mae(y_true, y_pred, axis=None):
    """Mean absolute error of unit-scaled parameters.

    ``axis=None`` averages everything (one number); ``axis=-1`` gives one value per
    row (per target, or per candidate when ``y_true[:, None]`` is compared with
    ``(N, K, P)`` candidates); ``axis=0`` gives one value per parameter.
    Shapes broadcast as in numpy.
    """
    err = np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64))
    out = err.mean(axis=axis)
    return out if np.ndim(out) else float(out)


def diversity(samples):
    """Mean pairwise L1 distance between a target's candidates, in unit scale.

    ``samples`` is ``(K, P)`` (one target, returns a float) or ``(N, K, P)`` (returns
    ``(N,)``). The L1 distance between two candidates is normalised by ``P``:
    ``mean_p |a_p - b_p|``, so the value lies in [0, 1] whatever the number of
    parameters (two independent uniform candidates give 1/3 on average). It is
    averaged over the ``K (K - 1) / 2`` distinct pairs; fewer than two candidates give 0.
    """
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim not in (2, 3):
        raise InputError(f"diversity needs samples (K, P) or (N, K, P), got shape {s.shape}")
    k = s.shape[-2]
    if k < 2:
        out = np.zeros(s.shape[:-2])
        return out if out.ndim else 0.0
    # Sum over pairs of |a_i - a_j| in O(K log K): each gap between consecutive
    # sorted values is spanned by (j + 1) * (K - j - 1) pairs (exactly 0 if all equal).
    gaps = np.diff(np.sort(s, axis=-2), axis=-2)
    j = np.arange(k - 1).reshape(k - 1, 1)
    pair_sum = (gaps * ((j + 1) * (k - j - 1))).sum(axis=-2)
    out = (pair_sum / (k * (k - 1) / 2)).mean(axis=-1)
    return out if out.ndim else float(out)


def coverage(y_true, samples, level: float = 0.8, axis=None):
    """Fraction of true values inside the central ``level`` interval of the samples.

    ``y_true`` is ``(N, P)``, ``samples`` ``(N, S, P)``. For each target and
    parameter the interval runs from the ``(1 - level) / 2`` to the
    ``(1 + level) / 2`` quantile of the ``S`` samples (numpy's linear quantiles),
    ends included. ``axis=None`` gives one number (well calibrated = ``level``);
    ``axis=0`` one value per parameter.
    """
    if not 0.0 < level < 1.0:
        raise InputError(f"coverage level must be in (0, 1), got {level}")
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 3 or y.shape != (s.shape[0], s.shape[2]):
        raise InputError(f"coverage needs y_true (N, P) and samples (N, S, P), got {y.shape} and {s.shape}")
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2], axis=1)
    inside = (y >= lo) & (y <= hi)
    out = inside.mean(axis=axis)
    return out if np.ndim(out) else float(out)
