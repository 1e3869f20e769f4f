"""Faults told apart and survived: a read-only database, a full disk, no database at all, an agent whose server died.

The read-only and disk-full cases run twice: on a real small filesystem (a
2 MiB tmpfs, remounted read-only) where this process may mount one (root,
as in the project's CI container; elsewhere that variant is the injected
one again), and with the store's writes failing with the very errors SQLite
raises (``attempt to write a readonly database``, ``OSError(ENOSPC)``),
injected at the cursor.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from test_agent import FAST, KEYS, AgentProcess, agent_ident, agents, create_job, outbox_files, poll, progress, register  # noqa: F401
from test_server import ADMIN, bearer, make_client

from hwlut.cli.supervisor import local_server
from lut_store import Store


def _mount(path: Path, *options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    cmd = ["mount", "-t", "tmpfs", "-o", ",".join(("size=2m", *options)), "tmpfs", str(path)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture(params=["filesystem", "injected"])
def small_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | None]:
    """A 2 MiB filesystem of its own, or ``None``: the errors injected (also where no mount is allowed)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = request.param == "filesystem" and _mount(folder)
    yield folder if mounted else None
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _inject(store: Store, error: Callable[[], BaseException]) -> Callable[[], None]:
    """Make every write of ``store`` fail with ``error()``; returns the undo."""

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            raise error()

    event.listen(store.engine, "before_cursor_execute", before)
    return lambda: event.remove(store.engine, "before_cursor_execute", before)


def _device(c: TestClient, name: str, pad: int = 0) -> Any:
    return c.post("/v1/devices", json={"name": name, "hardware": {"blob": "x" * pad}}, headers=bearer(ADMIN))


def _intact(store: Store, names: list[str]) -> None:
    with store.transaction() as session:
        if store.engine.dialect.name == "sqlite":
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert sorted(session.execute(text("SELECT name FROM devices")).scalars()) == sorted(names)


def test_read_only_database(small_fs: Path | None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(f"sqlite:///{(small_fs or tmp_path) / 'hwlut.db'}")
    store.upgrade()
    with make_client(store) as c:
        assert _device(c, "before").status_code == 201
        assert c.get("/ready").status_code == 200
        if small_fs is not None:
            store.dispose()
            assert subprocess.run(["mount", "-o", "remount,ro", str(small_fs)]).returncode == 0
            undo = lambda: subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)  # noqa: E731
        else:
            undo = _inject(store, lambda: sqlite3.OperationalError("attempt to write a readonly database"))
        with caplog.at_level(logging.ERROR, logger="hwlut"):
            r = _device(c, "during")
        assert r.status_code == 503, r.text
        assert r.json()["detail"][0]["msg"] == "the database is read-only" and r.headers["retry-after"]
        assert any("read-only" in rec.getMessage() for rec in caplog.records)
        ready = c.get("/ready")
        assert ready.status_code == 503 and "read-only" in ready.json()["reason"]
        assert c.get("/health").status_code == 200  # the process is up: only readiness fails
        # reads: served, or (SQLite in WAL mode cannot open a file on a read-only filesystem) 503 too
        assert c.get("/v1/devices/before").status_code in (200, 503)
        undo()
        store.dispose()
        assert _device(c, "after").status_code == 201
    _intact(store, ["after", "before"])


def test_disk_full(small_fs: Path | None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(f"sqlite:///{(small_fs or tmp_path) / 'hwlut.db'}")
    store.upgrade()
    with make_client(store) as c:
        assert _device(c, "before").status_code == 201
        filler = (small_fs or tmp_path) / "filler"
        if small_fs is not None:  # leave the database no room to grow
            with open(filler, "wb") as out, pytest.raises(OSError):
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            undo = filler.unlink
        else:
            undo = _inject(store, lambda: OSError(errno.ENOSPC, "No space left on device"))
        with caplog.at_level(logging.ERROR, logger="hwlut"):
            r = _device(c, "during", pad=500_000)
        assert r.status_code == 503, r.text
        assert r.json()["detail"][0]["msg"] == "the disk of the database is full"
        assert any("disk" in rec.getMessage() for rec in caplog.records)
        assert c.get("/ready").status_code == 503
        undo()
        assert _device(c, "after").status_code == 201
    _intact(store, ["after", "before"])


def test_server_without_its_database_stops_with_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "serve", "--port", "1"]
    for url in ("postgresql+psycopg://postgres@127.0.0.1:9/none", f"sqlite:///{tmp_path / 'never-migrated.db'}"):
        out = subprocess.run([*cmd, "--db", url], capture_output=True, text=True, timeout=60)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_agent_whose_server_died_stops_on_the_first_sigterm(
    tmp_path: Path,
    agents: list[AgentProcess],  # noqa: F811
) -> None:
    """The server killed mid-job: one SIGTERM stops the agent within seconds, its results kept in the outbox."""
    home = tmp_path / "home"
    home.mkdir()
    with local_server(home) as (url, admin, proc):
        token = register(url, admin)
        job = create_job(url, token, FAST, keys=KEYS[:4])
        agent = AgentProcess(tmp_path, url, token, "--once", "--batch", "4", "--patience", "600")
        agents.append(agent)
        poll(lambda: progress(url, token, job["id"])["leased"] > 0, "the agent's claim", deadline_s=300.0)
        proc.send_signal(signal.SIGKILL)  # the server dies while the agent measures its batch
        proc.wait()
        mine = agent_ident(url, token)
        poll(lambda: [p for p in outbox_files() if mine in str(p)], "results kept in the outbox", deadline_s=300.0)
        agent.proc.send_signal(signal.SIGTERM)
        status = agent.wait(timeout=15.0)  # AssertionError if it does not stop in time
        assert status != 0, agent.text()  # results left behind: not a clean finish
        assert [p for p in outbox_files() if mine in str(p)], agent.text()  # kept for the next run
        shutil.rmtree(Path(os.environ["HWLUT_HOME"]) / "agents" / mine)  # other tests see none
