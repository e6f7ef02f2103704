"""torchsynth's ``Voice`` as a wavinv generator: a synth written elsewhere, 78 parameters.

Source: the `torchsynth <https://github.com/torchsynth/torchsynth>`_ package,
version 1.0.2 (PyPI ``torchsynth==1.0.2``, Apache-2.0 licence; Shier, Turian and
Henry, "One Billion Audio Sounds from GPU-enabled Modular Synthesis", DAFx 2021).
Its ``Voice`` is the architecture of the synth1B1 data set: a monophonic keyboard,
two LFOs, six ADSRs, a modulation matrix, a sine VCO, a square/saw VCO, white
noise and a mixer. Nothing of torchsynth is changed; this file only drives it.

Install: ``pip install -c constraints.txt -e '.[examples]'``. torchsynth 1.0.2
imports ``pytorch_lightning.core.lightning`` (removed in pytorch-lightning 1.9)
and ``pkg_resources`` (removed in setuptools 81), so the extra pins
``pytorch-lightning<1.9`` and ``setuptools<81``; torch stays as it is.

Use: ``wavinv generate --generator examples/torchsynth_voice.py:voice ...``.

Parameters: the Voice's 78 parameters, named ``module.parameter`` as torchsynth
names them (``keyboard.midi_f0``, ``adsr_1.attack``, ``mod_matrix.lfo_1->vco_2_pitch``...),
in the column order ``Voice.forward`` returns them. Each is in torchsynth's own
[0, 1] parameter units (what ``Voice.randomize`` draws and what synth1B1's
parameter arrays hold), so wavinv's prior (uniform on each column) is torchsynth's
own random-patch distribution. torchsynth maps each value to its human range
by a power curve (``ModuleParameterRange.from_0to1``); every ``Param.unit`` says
that range and curve, and ``to_synth_units`` does the mapping, e.g.
``adsr_1.attack`` = 0.25 is 2 * 0.25 ** 2 = 0.125 s.

Sound: 16 kHz, 16,352 samples (1.022 s, which gives wavinv's 512 x 512 picture
exactly), torchsynth's default control rate (441 Hz) and hyper-parameters (its
"default" nebula). Mono float32, batches rendered ``BATCH`` clips at a time on one
torch thread (the caller's thread count is restored after): on 2 busy cores (load 10)
128 clips took 2.05 s on one thread against 6.78 s on two, whose threads mostly spun.
The bytes are the same on any number of threads.

Gradients: the Voice is a torch program, so the generator also offers ``render_torch``
(the same clips from a tensor, differentiable in every parameter), and
``wavinv invert --gradient S`` can follow the distance to the target through it.

Determinism: the only randomness inside a Voice is its white-noise buffer. torchsynth
gives each position in a batch its own noise row, which would make a clip depend
on where it sits in the batch; here every clip gets the same noise row:
``seed=None`` (the default, used for stores) is the first row of torchsynth's own
noise (its seed 13), and ``render(params, seed=s)`` another realisation (torch's
CPU generator seeded with ``s``), which the benchmark's same-sound floor uses.
Same parameters, same seed: the same bytes, whatever the batch.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from wavinv import FunctionGenerator, Param, ParamSpace

SAMPLE_RATE = 16000
N_SAMPLES = 16352  # 511 x 32: exactly 512 x 512 with wavinv's default frontend
BATCH = 32  # clips per torchsynth call (the Voice is built for a fixed batch size)
NOISE_SEED = 13  # torchsynth's Voice gives its Noise module this seed


@functools.lru_cache(maxsize=1)
def _synth():
    """The torchsynth Voice (built once per process) and its parameter keys in column order."""
    with warnings.catch_warnings():  # pytorch-lightning 1.8 warns that torchsynth's LightningModule import is deprecated
        warnings.simplefilter("ignore")
        import torch
        from torchsynth.config import SynthConfig
        from torchsynth.synth import Voice

        warnings.simplefilter("ignore")  # again: importing pytorch-lightning adds its own filters in front
        config = SynthConfig(batch_size=BATCH, sample_rate=SAMPLE_RATE, buffer_size_seconds=N_SAMPLES / SAMPLE_RATE, reproducible=False)
        synth = Voice(config)
    if int(synth.buffer_size) != N_SAMPLES:  # pragma: no cover - a torchsynth that rounds differently
        raise RuntimeError(f"torchsynth made {int(synth.buffer_size)} samples, expected {N_SAMPLES}")
    keys = []  # (module name, parameter name, its ModuleParameterRange), in Voice.forward's order
    for full_name, p in synth.named_parameters():
        module_name = full_name.split(".torchparameters.")[0]
        keys.append((module_name, p.parameter_name, p.parameter_range))
    return torch, synth, keys


def _unit(r) -> str:
    curve = f"symmetric curve {r.curve:g}" if r.symmetric else f"curve {r.curve:g}"
    return f"torchsynth [0, 1] -> {r.minimum:g}..{r.maximum:g}, {curve}"


@functools.lru_cache(maxsize=8)
def _noise(seed: int | None):
    torch, _, _ = _synth()
    gen = torch.Generator(device="cpu").manual_seed(NOISE_SEED if seed is None else int(seed))
    row = torch.empty((1, N_SAMPLES), device="cpu").uniform_(-1.0, 1.0, generator=gen)
    return row.repeat(BATCH, 1)  # the same row at every batch position


def render(params: np.ndarray, seed: int | None = None) -> np.ndarray:
    """float64 (B, 78) torchsynth [0, 1] units -> float32 (B, 16352); ``seed`` picks the noise realisation."""
    torch, synth, keys = _synth()
    params = np.clip(np.asarray(params, dtype=np.float64), 0.0, 1.0)
    if params.ndim != 2 or params.shape[1] != len(keys):
        raise ValueError(f"params must be (B, {len(keys)}), got {params.shape}")
    out = np.empty((len(params), N_SAMPLES), dtype=np.float32)
    synth.noise.noise = _noise(seed)  # the Noise module's buffer: one row for every position
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torchsynth's many small ops: one thread is faster, and far faster on a busy machine
    try:
        _render_batches(torch, synth, keys, params, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _render_batches(torch, synth, keys, params, out) -> None:
    with torch.no_grad():
        for start in range(0, len(params), BATCH):
            chunk = params[start : start + BATCH]
            n = len(chunk)
            if n < BATCH:  # pad with copies of the last row; clips do not interact
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], BATCH - n, axis=0)])
            values = torch.from_numpy(chunk.astype(np.float32))
            for j, (module_name, name, _) in enumerate(keys):
                getattr(synth, module_name).set_parameter_0to1(name, values[:, j].contiguous())
            out[start : start + n] = synth.output()[:n].numpy()


def render_torch(params):
    """float32 tensor (B, 78), torchsynth [0, 1] units -> (B, 16352), differentiable in ``params``.

    The same clips as ``render`` (to float32 rounding), for wavinv's gradient stage: each module's
    ``p()`` (how torchsynth reads a parameter) is pointed at a column of ``params`` for the call,
    so the graph runs from ``params`` through the Voice. Values outside [0, 1] are clamped.
    """
    torch, synth, keys = _synth()
    if params.ndim != 2 or params.shape[1] != len(keys):
        raise ValueError(f"params must be (B, {len(keys)}), got {tuple(params.shape)}")
    params = params.clamp(0.0, 1.0)
    synth.noise.noise = _noise(None)
    modules = {m: getattr(synth, m) for m, _, _ in keys}
    outs = []
    for start in range(0, len(params), BATCH):
        chunk = params[start : start + BATCH]
        n = len(chunk)
        if n < BATCH:
            chunk = torch.cat([chunk, chunk[-1:].expand(BATCH - n, -1)])
        columns: dict[str, dict[str, object]] = {m: {} for m in modules}
        for j, (m, name, r) in enumerate(keys):
            columns[m][name] = (r, chunk[:, j])
        for m, module in modules.items():
            module.p = lambda pid, _c=columns[m]: _c[pid][0].from_0to1(_c[pid][1])  # an instance attribute shadows the method
        try:
            outs.append(synth.output()[:n])
        finally:
            for module in modules.values():
                del module.p
    return torch.cat(outs)


def to_synth_units(params: np.ndarray) -> dict[str, np.ndarray]:
    """Columns in torchsynth's [0, 1] units -> {name: value in the module's human range}."""
    torch, _, keys = _synth()
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    return {
        f"{m}.{n}": r.from_0to1(torch.from_numpy(params[:, j].astype(np.float32))).numpy().astype(np.float64)
        for j, (m, n, r) in enumerate(keys)
    }


@functools.lru_cache(maxsize=1)
def voice() -> FunctionGenerator:
    """The generator (a zero-argument factory, so ``file.py:voice`` builds it on first use)."""
    _, _, keys = _synth()
    space = ParamSpace([Param(f"{m}.{n}", 0.0, 1.0, unit=_unit(r)) for m, n, r in keys])
    return FunctionGenerator(space, render, sample_rate=SAMPLE_RATE, n_samples=N_SAMPLES, name="torchsynth-voice", version="1.0.2-1",
                             render_torch=render_torch)
