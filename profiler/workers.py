"""Export worker processes that end with their parent and leave nothing behind.

A Ctrl-C in a terminal reaches every process of the foreground group. The
workers ignore SIGINT (they are spawned with it ignored, so not even their
start-up can print a ``KeyboardInterrupt`` traceback): the parent alone is
interrupted, and it stops them (:func:`stop_workers`). A worker ends on SIGTERM
by unwinding (its exporter's temporary folder is removed on the way out), and
on Linux it gets that SIGTERM when its parent dies, however the parent died
(``PR_SET_PDEATHSIG``), so no worker outlives a killed ``hwlut``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "TMP_PREFIX",
    "exit_when_terminated",
    "run_in_workers",
    "sigint_ignored",
    "stop_workers",
    "tmp_prefix",
    "worker_setup",
]

#: Exporters write under ``<cache>/<format>/.tmp-<pid>-…`` and rename into place when done.
TMP_PREFIX = ".tmp-"
#: Seconds a stopped worker gets to unwind before it is killed.
STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1
T = TypeVar("T")
#: The worker's parent (set by :func:`worker_setup`).
_PARENT: dict[str, int] = {}


def tmp_prefix() -> str:
    """The prefix of this process's temporary export folders (it names the process)."""
    return f"{TMP_PREFIX}{os.getpid()}-"


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: ``with`` blocks remove their temporary files


def exit_when_terminated(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker; a SIGTERM meanwhile unwinds it (removing its temporary files).

    With the parent alive, the pool's worker loop then takes the ``SystemExit`` as the task's
    result and ends on the shutdown the parent sends. With the parent gone it would wait for the
    next task for ever: the process ends here instead.
    """
    try:
        return fn(*args)
    except SystemExit as exc:
        if os.getppid() == _PARENT.get("pid"):
            raise
        os._exit(exc.code if isinstance(exc.code, int) else 1)


def worker_setup(parent: int) -> None:
    """In a worker: ignore SIGINT, unwind on SIGTERM, and get SIGTERM when ``parent`` dies."""
    _PARENT["pid"] = parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminated)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the parent died before the line above
        raise SystemExit(128 + signal.SIGTERM)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes are started, so they begin life ignoring it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # a SIGTERM ends the export the way Ctrl-C does


def _wait(processes: list[Any], until: float) -> None:
    for process in processes:
        process.join(max(0.0, until - time.monotonic()))


def stop_workers(pool: ProcessPoolExecutor, roots: list[Path], grace_s: float = STOP_GRACE_S) -> None:
    """Cancel what ``pool`` has not started, end its workers (SIGTERM, then SIGKILL after ``grace_s``).

    Then remove what a killed worker left under ``roots`` (its ``.tmp-<pid>-`` folders):
    the cache holds only whole artifacts, each renamed into place once written.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    _wait(processes, time.monotonic() + grace_s)
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                process.kill()
    _wait(processes, time.monotonic() + grace_s)
    pool.shutdown(wait=True)  # its manager thread sees the workers gone and frees the pool's semaphores
    pids = [process.pid for process in processes if process.pid is not None]
    for root in roots:
        for pid in pids:
            for left in root.glob(f"*/{TMP_PREFIX}{pid}-*"):
                shutil.rmtree(left, ignore_errors=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # a SIGTERM ends the export the way Ctrl-C does


def run_in_workers(
    make_pool: Callable[[], ProcessPoolExecutor],
    submit: Callable[[ProcessPoolExecutor], T],
    wait: Callable[[T], None],
    roots: list[Path],
) -> None:
    """Start a pool and ``submit`` its work with SIGINT ignored (the workers inherit that), then ``wait``.

    On any way out but success the workers are stopped first (:func:`stop_workers`). In the main
    thread a SIGTERM meanwhile is a ``KeyboardInterrupt``: the command ends as if interrupted,
    rather than dying with its workers half-started.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    pool: ProcessPoolExecutor | None = None
    try:
        with sigint_ignored():
            pool = make_pool()
            submitted = submit(pool)
        wait(submitted)
    except BaseException:
        if pool is not None:
            stop_workers(pool, roots)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    pool.shutdown(wait=True)
