"""Generation throughput on Dask against local worker processes, on the same machine, in one run.

    python benchmarks/dask_speed.py [--generator synth100] [--n 2048] [--repeats 2] [--scheduler tcp://host:8786]

Rows (interleaved, best of ``--repeats``; every run writes a fresh store with the
default chunk size, and the Dask stores are checked equal to the local one):

- ``local, workers=1`` and ``local, workers=2``: ``generate(..., workers=W)``;
  worker start-up (spawn, imports) is included, as a user pays it.
- ``dask local:2 (cluster start included)``: ``generate(..., scheduler="local:2")``,
  which starts a 2-process ``LocalCluster`` for the call and closes it.
- ``dask LocalCluster(2), running``: the cluster ``local:2`` starts
  (``wavinv.cluster.local_cluster``), kept running between calls (what a
  long-lived cluster gives; its workers imported wavinv in a first warm-up call).
- ``... Dask's default worker env``: a plain ``LocalCluster(2)``, whose nanny
  starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (as ``dask worker`` does).
- with ``--scheduler``: a run on that cluster too (the store goes in ``--workdir``,
  which every worker must see at the same path).

Figures: seconds, samples/s, x real time (seconds of audio rendered per second),
the ratio to ``workers=1``, and CPU seconds of every process involved (this one,
its child processes, and the workers of a running cluster): on a busy machine
wall time measures the neighbours as much as wavinv, CPU time much less so.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import logging
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from wavinv import __version__, load_generator


def machine() -> str:
    import dask
    import distributed

    return (
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"wavinv {__version__}, dask {dask.__version__}, distributed {distributed.__version__}, "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )


def _cpu_seconds() -> float:
    """CPU seconds of the calling process (run on the workers by ``client.run``)."""
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def cpu_now(client=None) -> float:
    """CPU seconds of this process, its reaped children, and ``client``'s workers."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return total + (sum(client.run(_cpu_seconds).values()) if client is not None else 0.0)


def arrays_digest(path: Path) -> str:
    """One digest of every array file (not the group's zarr.json, which records the creation time)."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file() and f != path / "zarr.json":
            h.update(str(f.relative_to(path)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generator", default="synth100")
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--scheduler", default=None, help="also run on this Dask scheduler address")
    ap.add_argument("--workdir", default=None, help="where stores are written (default: a temporary folder)")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    import wavinv.frontend  # noqa: F401  (torch imported once here, so no run pays it alone)
    from wavinv.cluster import local_cluster
    from wavinv.generate import generate

    logging.getLogger("distributed").setLevel(logging.ERROR)  # clusters log their shutdown at INFO
    print(machine())
    gen = load_generator(args.generator)
    audio_s = args.n * gen.n_samples / gen.sample_rate
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="wavinv-dask-speed-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def run(folder: str, **kw):
        out = workdir / folder

        def go() -> Path:
            shutil.rmtree(out, ignore_errors=True)
            generate(out, args.generator, args.n, progress=False, **kw)
            return out

        return go

    cluster = local_cluster(2)
    before = dict(os.environ)  # a plain LocalCluster writes its worker settings into os.environ: undone
    plain = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.ERROR)
    os.environ.clear()
    os.environ.update(before)
    client, plain_client = Client(cluster), Client(plain)
    remote = Client(args.scheduler) if args.scheduler else None
    try:
        runs = {  # name: (run, cluster whose workers' CPU counts)
            "local, workers=1": (run("w1", workers=1), None),
            "local, workers=2": (run("w2", workers=2), None),
            "dask local:2 (cluster start included)": (run("local2", scheduler="local:2"), None),
            "dask LocalCluster(2), running": (run("running", scheduler=client), client),
            "... Dask's default worker env": (run("plain", scheduler=plain_client), plain_client),
        }
        if remote is not None:
            runs[f"dask {args.scheduler}"] = (run("remote", scheduler=remote), remote)
        for i, c in enumerate(filter(None, [client, plain_client, remote])):  # workers import wavinv
            generate(workdir / f"warm-up-{i}", args.generator, 2 * 128, progress=False, scheduler=c)
        best, digests = measure(runs, args.repeats)
    finally:
        for c in filter(None, [remote, client, plain_client]):
            c.close()
        cluster.close()
        plain.close()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    report(args, audio_s, best, digests)


def measure(runs: dict, repeats: int) -> tuple[dict, dict]:
    """``({name: (best wall s, best CPU s)}, {name: digest of its store})``; runs interleaved,
    so a change in machine load hits every row alike."""
    best = {name: (float("inf"), float("inf")) for name in runs}
    digests = {}
    for _ in range(repeats):
        for name, (fn, on) in runs.items():
            c0, t0 = cpu_now(on), time.perf_counter()
            out = fn()
            wall, cpu = time.perf_counter() - t0, cpu_now(on) - c0
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
            digests[name] = arrays_digest(out)
    return best, digests


def report(args, audio_s: float, best: dict, digests: dict) -> None:
    same = len(set(digests.values())) == 1
    print(f"\n## generation throughput ({args.generator}, n={args.n}, {audio_s:.0f} s of audio; best of {args.repeats}, interleaved)")
    print(f"{'run':40s} {'seconds':>8s} {'samples/s':>10s} {'x real time':>12s} {'vs workers=1':>13s} {'CPU s':>7s} {'CPU vs workers=1':>17s}")
    base, base_cpu = best["local, workers=1"]
    for name, (wall, cpu) in best.items():
        print(f"{name:40s} {wall:8.2f} {args.n / wall:10.1f} {audio_s / wall:12.0f} {base / wall:13.2f} {cpu:7.2f} {cpu / base_cpu:17.2f}")
    print(f"every store byte-identical to the local one: {same}")


if __name__ == "__main__":
    main()
