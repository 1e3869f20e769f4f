"""A real ``hwlut serve`` subprocess on this machine, for commands that need a server for a while.

Used by ``hwlut quickstart`` (and tests that want the server a user gets):
applies the migrations of an SQLite database under a folder, starts the
server on 127.0.0.1 with an admin token made up for the session, waits with a
deadline until it answers, and stops it when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["free_port", "local_server", "stop_group", "until_signalled"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen[Any], grace_s: float = 30.0) -> None:
    """Stop the process group ``proc`` leads (``start_new_session``): SIGTERM, then SIGKILL after ``grace_s``."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def local_server(
    home: Path, *, port: int | None = None, admin_token: str | None = None
) -> Iterator[tuple[str, str, Any]]:
    """A real ``hwlut serve`` subprocess on 127.0.0.1 over SQLite in ``home``; yields (url, admin token, process).

    Applies the migrations first, waits (with a deadline) until ``/v1/health``
    answers, and stops the server when the block ends.
    """
    from lut_store import Store
    from lutclient import HwlutClient, HwlutError

    db_url = f"sqlite:///{home / 'hwlut.db'}"
    store = Store(db_url)
    store.upgrade()
    store.dispose()
    admin_token = admin_token or secrets.token_urlsafe(24)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(home / "quickstart-server.log", "ab")
    env = {**os.environ, "HWLUT_ADMIN_TOKEN": admin_token, "HWLUT_DATABASE_URL": db_url, "HWLUT_HOME": str(home)}
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "serve", "--port", str(port), "--db", db_url]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60.0
        with HwlutClient(url, timeout=2.0, retries=0) as client:
            while True:
                if proc.poll() is not None:
                    tail = (home / "quickstart-server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the server exited with status {proc.returncode}:\n{tail}")
                try:
                    client.health()
                    break
                except HwlutError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the server did not answer on {url} within 60 s") from None
                    time.sleep(0.1)
        yield url, admin_token, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@contextlib.contextmanager
def until_signalled(proc: subprocess.Popen) -> Iterator[None]:
    """Run the block, then wait until ``proc`` exits or Ctrl-C / SIGTERM arrives.

    The handlers are this function's own, set before the block runs (so a
    signal right after what the block prints is not lost) and restored
    after: the wait does not rely on Python's default SIGINT handler, which
    a library loaded earlier in the process may have replaced.
    """
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield
        while not stop.is_set() and proc.poll() is None:
            stop.wait(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
