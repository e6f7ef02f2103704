"""Dataset store speed: storage choices, generation overhead, read throughput.

    python benchmarks/store_speed.py [--generator synth100] [--n 1024] [--sections dtype,codecs,generate,read]

Sections (each prints a table; ratios are against a reference measured in the same process):

- ``dtype``: float32 vs float16 vs int16 waveforms: bytes on disk and what the
  default 512 x 512 dB spectrogram loses (mean / p99 / max abs dB error over the
  bins above the floor).
- ``codecs``: write MB/s, warm read MB/s and compression ratio of float32
  waveforms for several codecs (all followed by a CRC32C checksum) and chunk sizes.
- ``generate``: raw render speed (sampling + ``render_checked`` in chunk-sized
  batches) vs ``wavinv.generate`` with 1 and 2 worker processes: samples/s,
  x real time, wall and CPU time against raw rendering (best of ``--repeats``
  interleaved runs). Worker start-up (spawn, imports) is included.
- ``read``: warm read throughput of ``Store.batches`` (MB/s of decoded waveform
  and samples/s), of a whole-split ``LazyArray`` read, and of on-the-fly
  spectrogram batches against the frontend alone on in-memory clips (best of 3).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from wavinv import load_generator, open_store
from wavinv.generate import generate
from wavinv.generators import render_checked
from wavinv.store import compressors, default_chunk

MB = 1e6


def machine() -> str:
    import torch

    return (
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), zarr {zarr.__version__}, load average at start {os.getloadavg()[0]:.1f}"
    )


def clips(gen, n: int, seed: int = 0) -> np.ndarray:
    out = []
    for s in range(0, n, 64):
        out.append(render_checked(gen, gen.space.sample(s, min(n, s + 64), seed), offset=s))
    return np.concatenate(out)


def section_dtype(gen, waves: np.ndarray, workdir: Path) -> None:
    from wavinv.frontend import frontend_config, spectrogram

    cfg = frontend_config(sample_rate=gen.sample_rate, n_samples=gen.n_samples)
    floor = 20 * np.log10(cfg["amin"])
    ref = spectrogram(waves, cfg)
    above = ref > floor + 1e-3
    variants = {
        "float32": (waves, waves),
        "float16": (waves.astype(np.float16), waves.astype(np.float16).astype(np.float32)),
    }
    q = np.clip(np.rint(waves * 32767), -32768, 32767).astype(np.int16)
    variants["int16 (x32767)"] = (q, q.astype(np.float32) / 32767)
    print(f"\n## waveform dtype ({len(waves)} clips, peak |x| {np.abs(waves).max():.3f}, "
          f"{above.mean() * 100:.1f}% of spectrogram bins above the {floor:.0f} dB floor)")
    print(f"{'dtype':16s} {'MB raw':>8s} {'MB disk':>8s} {'vs f32':>7s} {'mean dB err':>12s} {'p99 dB err':>11s} {'max dB err':>11s}")
    base = None
    for name, (stored, decoded) in variants.items():
        path = workdir / f"dtype-{name.split()[0]}"
        arr = zarr.create_array(str(path), shape=stored.shape, chunks=(64, stored.shape[1]), dtype=stored.dtype, compressors=compressors())
        arr[:] = stored
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        base = base or disk
        err = np.abs(spectrogram(decoded, cfg) - ref)[above]
        print(f"{name:16s} {stored.nbytes / MB:8.1f} {disk / MB:8.1f} {disk / base:7.2f} {err.mean():12.4f} {np.percentile(err, 99):11.4f} {err.max():11.3f}")


# name -> zarr codecs; Blosc ones also timed alone on one core (steadier on a busy machine)
BLOSC = {
    "blosc lz4-5 bitshuffle": ("lz4", 5, "bitshuffle"),
    "blosc lz4-5 shuffle": ("lz4", 5, "shuffle"),
    "blosc lz4-9 shuffle (store)": ("lz4", 9, "shuffle"),
    "blosc zstd-1 bitshuffle": ("zstd", 1, "bitshuffle"),
    "blosc zstd-3 bitshuffle": ("zstd", 3, "bitshuffle"),
    "blosc zstd-3 shuffle": ("zstd", 3, "shuffle"),
}
CODECS = {
    "none": lambda: [Crc32cCodec()],
    "zstd-0 (zarr default)": lambda: [ZstdCodec(level=0), Crc32cCodec()],
    **{name: (lambda c=c: [BloscCodec(cname=c[0], clevel=c[1], shuffle=c[2]), Crc32cCodec()]) for name, c in BLOSC.items()},
}


def blosc_alone(waves: np.ndarray, cname: str, level: int, shuffle: str) -> tuple[float, float]:
    """Encode and decode MB/s of one chunk by numcodecs' Blosc on one thread (best of 10)."""
    import numcodecs
    from numcodecs import Blosc

    numcodecs.blosc.set_nthreads(1)
    codec = Blosc(cname=cname, clevel=level, shuffle={"shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}[shuffle])
    enc = codec.encode(waves)
    t_enc = min(measure(lambda: codec.encode(waves))[0] for _ in range(10))
    t_dec = min(measure(lambda: codec.decode(enc))[0] for _ in range(10))
    return waves.nbytes / t_enc / MB, waves.nbytes / t_dec / MB


def write_read(waves: np.ndarray, path: Path, chunk: int, codecs) -> tuple[float, float, float]:
    """Write MB/s (chunk by chunk, as generate does), warm read MB/s (whole array), compression ratio; best of 3."""
    shutil.rmtree(path, ignore_errors=True)
    arr = zarr.create_array(str(path), shape=waves.shape, chunks=(chunk, waves.shape[1]), dtype=waves.dtype, compressors=codecs)
    writes = []
    for _ in range(3):
        t0 = time.perf_counter()
        for s in range(0, len(waves), chunk):
            arr[s : s + chunk] = waves[s : s + chunk]
        writes.append(time.perf_counter() - t0)
    arr[:]  # warm: page cache
    reads = []
    for _ in range(3):
        t0 = time.perf_counter()
        back = arr[:]
        reads.append(time.perf_counter() - t0)
    assert np.array_equal(back, waves)
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return waves.nbytes / min(writes) / MB, waves.nbytes / min(reads) / MB, waves.nbytes / disk


def section_codecs(waves: np.ndarray, workdir: Path) -> None:
    chunk = default_chunk(waves.shape[1])
    print(f"\n## codecs (float32, {len(waves)} clips = {waves.nbytes / MB:.0f} MB, chunks of {chunk} clips)")
    print("(all + crc32c; write/read through zarr, best of 3; 1-core columns: Blosc alone on one chunk, best of 10)")
    print(f"{'codec':30s} {'write MB/s':>11s} {'read MB/s':>10s} {'ratio':>6s} {'1-core enc':>11s} {'1-core dec':>11s}")
    for name, make in CODECS.items():
        w, r, ratio = write_read(waves, workdir / "codec", chunk, make())
        alone = "".join(f"{v:12.0f}" for v in blosc_alone(waves[:chunk], *BLOSC[name])) if name in BLOSC else ""
        print(f"{name:30s} {w:11.0f} {r:10.0f} {ratio:6.3f}{alone}")
    print(f"\n## chunk size (store codecs: {' + '.join(type(c).__name__ for c in compressors())})")
    print(f"{'clips/chunk':>11s} {'MB/chunk':>9s} {'write MB/s':>11s} {'read MB/s':>10s} {'ratio':>6s}")
    for c in (16, 32, 64, 128, 256, 512):
        if c > len(waves):
            break
        w, r, ratio = write_read(waves, workdir / "chunk", c, compressors())
        print(f"{c:11d} {c * waves.shape[1] * 4 / MB:9.2f} {w:11.0f} {r:10.0f} {ratio:6.3f}")


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - t0, cpu_seconds() - c0


def section_generate(spec: str, gen, n: int, workdir: Path, repeats: int) -> None:
    import wavinv.frontend  # noqa: F401  (imported once here, so no run pays torch's import alone)

    chunk = default_chunk(gen.n_samples)
    audio_s = n * gen.n_samples / gen.sample_rate

    def raw() -> None:
        for s in range(0, n, chunk):
            render_checked(gen, gen.space.sample(s, min(n, s + chunk), 0), offset=s)

    def store(workers: int):
        out = workdir / f"gen-{workers}"

        def run() -> None:
            shutil.rmtree(out, ignore_errors=True)
            generate(out, spec, n, chunk=chunk, workers=workers, progress=False)

        return run

    runs = {"raw render (in process)": raw, "wavinv generate, 1 worker": store(1), "wavinv generate, 2 workers": store(2)}
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(repeats):  # interleaved, so a change in machine load hits every row alike
        for name, fn in runs.items():
            wall, cpu = measure(fn)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    print(f"\n## generation ({spec}, n={n}, chunks of {chunk}, {audio_s:.0f} s of audio; best of {repeats})")
    print(f"{'run':28s} {'seconds':>8s} {'samples/s':>10s} {'x real time':>12s} {'vs raw':>7s} {'CPU s':>7s} {'CPU vs raw':>11s}")
    raw_wall, raw_cpu = best["raw render (in process)"]
    for name, (wall, cpu) in best.items():
        print(f"{name:28s} {wall:8.2f} {n / wall:10.1f} {audio_s / wall:12.0f} {raw_wall / wall:7.2f} {cpu:7.2f} {cpu / raw_cpu:11.2f}")
    wall, cpu = best["wavinv generate, 1 worker"]
    print(f"store overhead with 1 worker: {wall / raw_wall - 1:+.1%} wall time, {cpu / raw_cpu - 1:+.1%} CPU time of raw rendering")
    # Whole runs are at the mercy of machine load; per-chunk medians of the two halves of a
    # task (render; write + checksum + record) are a steadier estimate of the overhead.
    from wavinv.generate import rendered_chunk
    from wavinv.store import Store

    st = Store(workdir / "gen-1", mode="r+")
    render_cpu, write_cpu = [], []
    for k in range(min(5, st.n_chunks)):
        c0 = cpu_seconds()
        data = rendered_chunk(st, gen, k)
        c1 = cpu_seconds()
        st.write_chunk(k, *data)
        render_cpu.append(c1 - c0)
        write_cpu.append(cpu_seconds() - c1)
    r, w = statistics.median(render_cpu), statistics.median(write_cpu)
    print(f"per chunk of {chunk} (median of {len(render_cpu)}): render {r * 1e3:.0f} ms CPU, write + checksums + record {w * 1e3:.0f} ms CPU = {w / r:+.1%}")


def section_read(store_path: Path, batch: int) -> None:
    from wavinv.frontend import Spectrogram, spectrogram
    from wavinv.pictures import spectrogram_batches

    s = open_store(store_path)
    n, row = s.n, s.n_samples * 4
    print(f"\n## reading ({store_path.name}: n={n}, {n * row / MB:.0f} MB of waveform, warm page cache)")
    print(f"{'read':44s} {'seconds':>8s} {'MB/s':>8s} {'samples/s':>10s}")

    def timed(name: str, fn, rows: int) -> float:
        fn()  # warm
        t = min(measure(fn)[0] for _ in range(3))
        print(f"{name:44s} {t:8.3f} {rows * row / t / MB:8.0f} {rows / t:10.0f}")
        return t

    def drain(**kw):
        return lambda: sum(len(ids) for ids, _, _ in s.batches(**kw))

    t_ref = timed("zarr waveform[:] (reference: whole array)", lambda: s.group["waveform"][:], n)
    t_b = timed(f"batches(all, {batch}) waveform", drain(batch_size=batch), n)
    timed(f"batches(train, {batch}, shuffle) waveform", drain(split="train", batch_size=batch, shuffle=True), len(s.split_indices("train")))
    timed("waveforms('train')[:] (LazyArray, one call)", lambda: s.waveforms("train")[:], len(s.split_indices("train")))
    val = s.split_indices("val")
    module = Spectrogram.from_config(s.frontend_config)
    waves = s.waveforms("val")[:]
    t_fe = timed("frontend alone, val split in memory (batch 64)", lambda: spectrogram(waves, module, 64), len(val))
    t_sp = timed("batches(val, 64) spectrogram on the fly", lambda: sum(len(ids) for ids, _, _ in spectrogram_batches(s, "val", 64, frontend=module)), len(val))
    print(f"waveform batches read at {t_ref / t_b:.2f}x the speed of zarr's own whole-array read; "
          f"on-the-fly spectrogram batches at {t_fe / t_sp:.2f}x the frontend's own speed on in-memory clips")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", default="synth100")
    ap.add_argument("--n", type=int, default=2048, help="samples for the generation and read sections")
    ap.add_argument("--n-storage", type=int, default=512, help="clips for the dtype and codec sections")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats of the generation runs (best is shown)")
    ap.add_argument("--sections", default="dtype,codecs,generate,read")
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = ap.parse_args()
    sections = args.sections.split(",")
    print(machine())
    gen = load_generator(args.generator)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        workdir = Path(tmp)
        if {"dtype", "codecs"} & set(sections):
            waves = clips(gen, args.n_storage)
            if "dtype" in sections:
                section_dtype(gen, waves[:256], workdir)
            if "codecs" in sections:
                section_codecs(waves, workdir)
        if "generate" in sections or "read" in sections:
            section_generate(args.generator, gen, args.n, workdir, args.repeats)
        if "read" in sections:
            section_read(workdir / "gen-1", args.batch)


if __name__ == "__main__":
    main()
