"""Spectrograms per second of the frontend, per kind and backend, on one or more devices.

    python benchmarks/frontend_speed.py [--device cpu|cuda|all] [--batch 64] [--repeats 5]
                                        [--sweep 1,2,4,8,16,64]

Times ``Spectrogram.forward`` on a batch of random 16,352-sample clips under
``torch.inference_mode()`` (median of ``--repeats`` after one warm-up call, the
backends' calls alternating) and prints, per kind, torch.stft's speed as a ratio
of nnAudio's measured in the same process, and which backend ``backend="auto"``
runs on that device. Then ``--sweep``: the default frontend on 256 clips on CPU
with ``wavinv.frontend.CPU_BATCH`` (clips per STFT call) set to each size, as a
ratio of the speed at the largest one; it picks ``CPU_BATCH``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
import time

import torch

import wavinv.frontend as frontend
from wavinv.frontend import DEFAULT_N_SAMPLES, KINDS, Spectrogram, resolve_backend, spectrogram


def machine(devices: list[str]) -> str:
    lines = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), nnAudio {importlib.metadata.version('nnAudio')}",
        # other work on the machine slows every row; the same-process ratios suffer less
        "load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()),
    ]
    if any(d.startswith("cuda") for d in devices):
        lines.append(f"gpu: {torch.cuda.get_device_name()}")
    return "\n".join(lines)


def seconds_per_batch(modules: dict[str, Spectrogram], x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per call of each module; calls alternate so background load hits all alike."""

    def sync() -> None:
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {name: [] for name in modules}
    with torch.inference_mode():
        for module in modules.values():
            module(x)  # warm-up: allocator, kernel selection
        for _ in range(repeats):
            for name, module in modules.items():
                sync()
                t0 = time.perf_counter()
                module(x)
                sync()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, or all (cpu and cuda when available)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweep", default="1,2,4,8,16,64", help="CPU_BATCH values to compare for the default frontend on CPU ('' to skip)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS))
    args = ap.parse_args()
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    kinds = args.kinds.split(",")
    print(machine(devices))
    print(f"batch: {args.batch} clips x {DEFAULT_N_SAMPLES} samples at 16 kHz -> 512 x 512 dB; median of {args.repeats}")
    print()
    print("| device | kind | backend | s / batch | spectrograms / s |")
    print("|---|---|---|---:|---:|")
    ratios = []
    gen = torch.Generator().manual_seed(0)
    x_cpu = 0.1 * torch.randn(args.batch, DEFAULT_N_SAMPLES, generator=gen)
    for device in devices:
        x = x_cpu.to(device)
        for kind in kinds:
            backends = ("torch", "nnaudio") if kind != "cqt" else ("nnaudio",)
            modules = {b: Spectrogram(kind=kind, backend=b).to(device) for b in backends}
            speed = {}
            for backend, s in seconds_per_batch(modules, x, args.repeats).items():
                speed[backend] = args.batch / s
                print(f"| {device} | {kind} | {backend} | {s:.3f} | {speed[backend]:.1f} |", flush=True)
            if len(speed) == 2:
                ratios.append((device, kind, speed["torch"] / speed["nnaudio"]))
    print()
    for device, kind, ratio in ratios:
        print(f"{device} {kind}: torch.stft is {ratio:.2f}x the speed of nnAudio; "
              f"backend='auto' runs {resolve_backend('auto', kind, device)}")
    if args.sweep:
        sizes = [int(b) for b in args.sweep.split(",")]
        waves = (0.1 * torch.randn(256, DEFAULT_N_SAMPLES, generator=gen)).numpy()
        module = Spectrogram()
        chosen = frontend.CPU_BATCH
        print()
        print("| CPU_BATCH (clips per STFT call, cpu) | spectrograms / s | x the largest |")
        print("|---:|---:|---:|")
        speed = {}
        try:
            for b in sizes:
                frontend.CPU_BATCH = b
                spectrogram(waves[:8], module, device="cpu")  # warm up
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    spectrogram(waves, module, batch_size=max(sizes), device="cpu")
                    times.append(time.perf_counter() - t)
                speed[b] = len(waves) / statistics.median(times)
        finally:
            frontend.CPU_BATCH = chosen
        for b in sizes:
            print(f"| {b} | {speed[b]:.1f} | {speed[b] / speed[max(sizes)]:.2f} |")
        print(f"wavinv uses CPU_BATCH = {chosen}")


if __name__ == "__main__":
    main()
