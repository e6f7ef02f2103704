"""A Dask session, and "run this task over chunks" on it (``pip install wavinv[dask]``).

This module knows Dask and nothing about stores or estimators: the generation
(``wavinv.generate``) and the LightGBM fit (``wavinv.models.lgbm_dask``) hand it
their tasks. Everything that touches dask imports it inside a function, so
``import wavinv`` and every local run never import dask. A ``scheduler`` is one of:

- ``"local:N"`` (``"local"``: one worker per core): a ``LocalCluster`` of N worker
  processes with one thread each, started for the call and closed after it;
- a scheduler address, ``"tcp://host:8786"`` (what ``dask scheduler`` prints);
  ``host:port`` means tcp;
- a scheduler file ``*.json`` (``dask scheduler --scheduler-file``, dask-jobqueue, dask-mpi);
- a connected ``distributed.Client``, used as is and left open.

``session`` connects and checks that the workers run this wavinv version.
``shared_location`` checks that every worker sees a path or URL (a shared
filesystem, or an fsspec URL every worker reaches). ``run_chunks`` submits one
task per chunk; when the run stops (an error, Ctrl-C) the tasks not yet started
are told to skip, and the chunks in flight are waited for, so once the call
returns no task writes any more (a second Ctrl-C stops waiting).
Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which about
doubles synth100's CPU time; ``local:N`` clusters run without it (``local_cluster``),
a user's own workers only if their Dask configuration says so.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
import uuid
from concurrent.futures import CancelledError
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tqdm.auto import tqdm

from .errors import InputError, StoreError
from .limits import cpu_count
from .location import Location

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["local_cluster", "session"]

log = logging.getLogger(__name__)

# seconds to reach a scheduler, and for at least one worker to join it
CONNECT_TIMEOUT_S = 30
WORKER_WAIT_S = 60
# seconds a stopped run waits for the chunks in flight to be written
DRAIN_TIMEOUT_S = 600
_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_HOST_PORT = re.compile(r"^\[?[\w.\-:]+\]?:\d+$")
_INSTALL = "--scheduler needs Dask: pip install 'wavinv[dask]'"


def parse_scheduler(scheduler: str) -> tuple[str, Any]:
    """``("local", n_workers)``, ``("file", path)`` or ``("address", address)``; ``InputError`` if none fits."""
    text = scheduler.strip() if isinstance(scheduler, str) else ""
    if text == "local":
        return "local", cpu_count()
    if text.startswith("local:"):
        n = text[len("local:") :]
        if not n.isdigit() or int(n) < 1:
            raise InputError(f"scheduler {scheduler!r}: local:N needs N >= 1 worker processes")
        return "local", int(n)
    if text.endswith(".json"):
        if not Path(text).is_file():
            raise InputError(f"scheduler file not found: {text}")
        return "file", text
    proto, sep, rest = text.partition("://")
    if (sep and proto in _PROTOCOLS and rest) or (not sep and _HOST_PORT.match(text)):
        return "address", text
    raise InputError(
        f"scheduler must be local, local:N, a Dask scheduler address such as tcp://host:8786, "
        f"or a scheduler file (.json), got {scheduler!r}"
    )


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise InputError(_INSTALL) from None
    return distributed


@contextlib.contextmanager
def session(scheduler: "str | Client") -> Iterator["Client"]:
    """A ``distributed.Client`` for ``scheduler`` with at least one worker running this wavinv.

    A cluster or connection made here is closed on exit; a ``Client`` passed in is left open.
    """
    if not isinstance(scheduler, str):
        distributed = _import_distributed()
        if not isinstance(scheduler, distributed.Client):
            raise InputError(f"scheduler must be a string or a distributed.Client, got {type(scheduler).__name__}")
        _check_workers(scheduler)
        yield scheduler
        return
    kind, value = parse_scheduler(scheduler)
    distributed = _import_distributed()
    with contextlib.ExitStack() as stack:
        if kind == "local":
            log.info("starting a local Dask cluster of %d worker processes", value)
            stack.enter_context(_quiet("distributed"))  # closed last: the cluster logs its shutdown
            cluster = stack.enter_context(local_cluster(value))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            where = {"address": value} if kind == "address" else {"scheduler_file": value}
            try:
                client = stack.enter_context(distributed.Client(**where, timeout=CONNECT_TIMEOUT_S))
            except (OSError, TimeoutError, ValueError) as e:
                raise InputError(f"cannot reach the Dask scheduler {value}: {type(e).__name__}: {e}") from None
        _check_workers(client)
        yield client


def local_cluster(n_workers: int):
    """The ``LocalCluster`` that ``local:N`` starts: N worker processes of one thread, no dashboard.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes
    glibc map and fault in every large temporary array anew: generating synth100
    then takes about twice the CPU time (``benchmarks/dask_speed.py``). These
    workers run without it. The nanny also writes its worker settings into this process's
    environment, where later local worker processes would inherit them: they are undone.
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise InputError(f"a local cluster needs n_workers >= 1, got {n_workers!r}")
    distributed = _import_distributed()
    import dask

    before = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": ":0"},  # the HTTP server on a free port: 8787 may be taken
                silence_logs=logging.ERROR,
            )
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` while inside."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_workers(client: "Client") -> None:
    """Wait for a worker; refuse workers that lack this wavinv version."""
    address = client.scheduler.address
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise InputError(f"no Dask worker joined the scheduler {address} within {WORKER_WAIT_S} s: start workers with `dask worker {address}`") from None
    mine = importlib.metadata.version("wavinv")
    # importlib.metadata is everywhere, so this runs even where wavinv is missing
    for worker, version in client.run(importlib.metadata.version, "wavinv", on_error="return").items():
        if isinstance(version, BaseException):
            raise InputError(f"Dask worker {worker} has no wavinv ({type(version).__name__}: {version}): install wavinv[dask] {mine} on every worker")
        if version != mine:
            raise InputError(f"Dask worker {worker} runs wavinv {version}, this is wavinv {mine}: install the same version everywhere")


def shared_location(client: "Client", where: str, sees: Callable[[str], bool]) -> str:
    """``where`` as the workers must see it, after checking that ``sees(where)`` holds on every worker.

    A local path is made absolute (workers must mount it at the same path); a URL
    must be reachable from every worker (a ``memory://`` location is not: it lives in
    one process).
    """
    loc = Location(where)
    where = os.path.abspath(where) if loc.is_local else loc.url
    seen = client.run(sees, where, on_error="return")
    blind = [w for w, ok in seen.items() if ok is not True]
    if blind:
        what = "storage every worker mounts at the same path" if loc.is_local else "a URL every worker can reach"
        raise InputError(f"Dask worker {blind[0]} cannot see {where}: put the store on {what}")
    return where


def _unless_stopped(task: Callable[..., int], stop: str, *args: Any) -> int:
    """``task(*args)`` unless the run was stopped before this task started."""
    from distributed import Event

    if Event(stop).is_set():
        return 0
    return task(*args)


def run_chunks(
    client: "Client", task: Callable[..., int], where: str, pending: list[int], *args: Any, sees: Callable[[str], bool], total: int, desc: str, progress: bool = True
) -> None:
    """Run ``task(where, *args, k)`` for every chunk ``k`` in ``pending`` as tasks on ``client``'s cluster.

    ``where`` must pass ``sees`` on every worker (``shared_location``); each task
    returns how many rows it did (``total`` in all, for the progress bar). Objects
    in ``args`` that are not strings are sent to every worker once. The caller
    holds whatever lock ``where`` needs; this returns (or raises) only when no task runs any more.
    """
    from distributed import Event, KilledWorker, as_completed
    from distributed.comm.core import CommClosedError

    where = shared_location(client, str(where), sees)
    args = tuple(a if isinstance(a, str) else client.scatter(a, broadcast=True, hash=False) for a in args)
    stop = f"wavinv-stop-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(_unless_stopped, task, stop, where, *args, k, key=f"wavinv-chunk-{k}-{token}") for k in pending]
    with tqdm(total=total, unit="clip", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        try:
            for fut in as_completed(futures):
                bar.update(fut.result())
        except BaseException as e:
            _drain(client, stop, futures, where)
            if isinstance(e, KilledWorker):
                raise StoreError(f"Dask workers died writing {where} ({e}); out of memory? Finished chunks are kept: run the same command to resume") from None
            if isinstance(e, (CancelledError, CommClosedError)):
                raise StoreError(f"lost the Dask scheduler while writing {where}: finished chunks are kept; run the same command to resume") from None
            raise
        finally:
            with contextlib.suppress(Exception):
                Event(stop, client=client).clear()  # frees the event on the scheduler


def _drain(client: "Client", stop: str, futures: list, path: str) -> None:
    """Stop a run: tasks not started skip their chunk, and the chunks in flight are waited for."""
    from distributed import Event, wait

    try:
        Event(stop, client=client).set()
        log.info("stopping: waiting for the chunks in flight")
        wait(futures, timeout=DRAIN_TIMEOUT_S)
    except BaseException as e:  # a second Ctrl-C, a lost scheduler or the timeout: stop waiting
        running = sum(not f.done() for f in futures)
        if running:
            log.warning("%d chunk tasks of %s may still be running on the cluster (%s); wait for them before writing this store again", running, path, type(e).__name__)
    finally:
        client.cancel(futures)


def wait_for(futures: list, desc: str, progress: bool) -> None:
    """Wait for ``futures``, with a progress bar; the first failure is raised."""
    from distributed import as_completed

    with tqdm(total=len(futures), desc=desc, unit="chunk", disable=not progress, leave=False) as bar:
        for fut in as_completed(futures):
            fut.result()
            bar.update()
