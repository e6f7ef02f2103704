"""Render speed of the built-in synthesizer ``synth100``: clips per second and x real time.

    python benchmarks/render_speed.py [--batch 1,16,64,256] [--repeats 5] [--threads N]

For each batch size: one warm-up call, then ``--repeats`` calls on the same random
patches; prints the median and best wall time per batch, clips/s and "x real time"
(seconds of audio rendered per second of wall time; the target is 1000x on 2
cores), the CPU seconds the process spent per batch (median and best) and audio
seconds per CPU second, which other work on the machine disturbs far less than
wall time, and the speed-up over one thread measured in the same process.
torch's thread count is set to the same number of threads, so the figures sit
beside the frontend's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import numpy as np
import torch

from wavinv.generators.synth100 import Synth100


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def timings(synth: Synth100, x: np.ndarray, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of each of ``repeats`` calls after one warm-up call."""
    synth.render(x)
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        synth.render(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="1,16,64,256", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per batch size")
    parser.add_argument("--threads", type=int, default=None, help="render threads (default: usable cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",") if b.strip()]
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)

    synth = Synth100(threads=threads)
    single = Synth100(threads=1)
    clip_s = synth.n_samples / synth.sample_rate
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {cpu_model()}, {usable_cores()} usable cores ({os.cpu_count()} CPUs), {platform.platform()}")
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    # other work on the machine slows wall times; CPU seconds and same-process ratios suffer less
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"synth100: {len(synth.space)} params, {synth.n_samples} samples @ {synth.sample_rate} Hz "
          f"({clip_s:.3f} s per clip), render threads {threads}, repeats {args.repeats}")
    print()
    header = (f"{'batch':>6} {'median ms':>10} {'best ms':>9} {'clips/s':>9} {'x realtime':>11} "
              f"{'best x rt':>10} {'CPU ms':>8} {'best CPU':>9} {'x rt/CPU-s':>11} {'vs 1 thread':>12}")
    print(header)
    print("-" * len(header))
    for b in batches:
        x = synth.space.sample(0, b, seed=args.seed)
        wall, cpu = timings(synth, x, args.repeats)
        med, best = statistics.median(wall), min(wall)
        ratio = ""
        if threads > 1:
            wall1, _ = timings(single, x, args.repeats)
            ratio = f"{statistics.median(wall1) / med:.2f}x"
        cpu_med = statistics.median(cpu)
        print(f"{b:>6} {med * 1e3:>10.1f} {best * 1e3:>9.1f} {b / med:>9.0f} {b * clip_s / med:>10.0f}x "
              f"{b * clip_s / best:>9.0f}x {cpu_med * 1e3:>8.1f} {min(cpu) * 1e3:>9.1f} {b * clip_s / cpu_med:>10.0f}x "
              f"{ratio:>12}")


if __name__ == "__main__":
    main()
