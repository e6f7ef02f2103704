"""What share of a spec-cnn training step the spectrogram frontend costs, nnAudio against torch.stft.

    python benchmarks/frontend_share.py [--batch 64] [--steps 20] [--devices cpu,cuda] [--method spec-cnn]

``spec-cnn`` trained on waveforms makes its 512 x 512 picture inside the network,
on the training device, at every step. For each device and each frontend
backend (``torch``: ``torch.stft``; ``nnaudio``: nnAudio's conv1d Fourier
kernels), this builds the network ``wavinv fit`` would train (the recipe's
defaults, the backend forced), then times, alternating the backends in the
same process: a whole training step (forward, loss, backward, Adam) on a batch
of ``--batch`` synth100 clips, and the frontend's forward alone on the same
batch. It prints seconds per step, the frontend's share of the step, clips per
second, and each backend's step time as a ratio of torch.stft's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"need a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"need a whole number >= 1, got {value}")
    return value


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=_positive, default=64, help="clips per training step (default 64, spec-cnn's batch_size)")
    ap.add_argument("--steps", type=_positive, default=20, help="timed steps per backend and device (default 20, after 2 warm-up steps)")
    ap.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu", help="comma-separated torch devices")
    ap.add_argument("--method", default="spec-cnn", help="a method whose network starts with the frontend (default spec-cnn)")
    args = ap.parse_args()
    for device in args.devices.split(","):
        try:
            dev = torch.device(device)
        except RuntimeError:
            ap.error(f"--devices: {device!r} is not a torch device")
        if dev.type == "cuda" and not torch.cuda.is_available():
            ap.error("--devices: cuda asked for, but torch sees no GPU")

    import numpy as np

    from wavinv.errors import InputError
    from wavinv.generators import load_generator
    from wavinv.methods import build_method

    try:
        build_method(args.method, frontend={"backend": "torch"}, progress=False)
    except (InputError, TypeError):
        ap.error(f"--method: {args.method!r} is not a method whose network takes a frontend (spec-cnn)")

    gen = load_generator("synth100")
    clips = torch.from_numpy(gen.render(gen.space.sample(0, args.batch, seed=0)))
    y = torch.from_numpy(np.random.default_rng(0).random((args.batch, len(gen.space)), dtype=np.float32))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.method}, batch {args.batch} clips of {gen.n_samples} samples, {args.steps} timed steps per backend, alternating\n")
    print("| device | backend | step (s) | frontend (s) | frontend share | clips/s | step vs torch.stft |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for device in args.devices.split(","):
        dev = torch.device(device)

        def sync() -> None:
            if dev.type == "cuda":
                torch.cuda.synchronize()

        nets, opts = {}, {}
        for backend in ("torch", "nnaudio"):
            est = build_method(args.method, frontend={"backend": backend}, progress=False)
            net = est._build(est._net_config(clips.numpy(), y.shape[1]), seed=0).to(dev).train()
            nets[backend], opts[backend] = net, torch.optim.Adam(net.parameters(), lr=1e-4)
        x, yt = clips.to(dev), y.to(dev)
        step_s = {b: [] for b in nets}
        front_s = {b: [] for b in nets}
        for i in range(args.steps + 2):
            for backend, net in nets.items():
                sync()
                t0 = time.perf_counter()
                loss = net.loss(x, yt, 1.0, None)
                opts[backend].zero_grad(set_to_none=True)
                loss.backward()
                opts[backend].step()
                sync()
                t1 = time.perf_counter()
                with torch.no_grad():
                    net.features(x)
                sync()
                t2 = time.perf_counter()
                if i >= 2:  # warm-up steps (allocation, kernel caches) are not timed
                    step_s[backend].append(t1 - t0)
                    front_s[backend].append(t2 - t1)
        base = statistics.median(step_s["torch"])
        for backend in nets:
            step, front = statistics.median(step_s[backend]), statistics.median(front_s[backend])
            print(f"| {device} | {backend} | {step:.3f} | {front:.3f} | {100 * front / step:.1f}% | {args.batch / step:.1f} | {step / base:.2f} |", flush=True)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("medians over the timed steps; the frontend alone runs without gradients, as it does inside a step (no trainable kernels)")


if __name__ == "__main__":
    main()
