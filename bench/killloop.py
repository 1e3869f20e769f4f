"""The server killed with SIGKILL during a stream of uploads, restarted, over and over: nothing acknowledged is lost.

    python bench/killloop.py --db sqlite --rounds 20
    python bench/killloop.py --db "$HWLUT_TEST_POSTGRES_URL" --rounds 20
    python bench/killloop.py --restart-postgres --rounds 20   # PostgreSQL restarted, the server kept

Each round starts ``hwlut serve`` on a fresh port of the same database, lets
an uploader (one result per request, each item of a lease of its own) run
for a random 0.2-1.5 s, then SIGKILLs the server mid-stream. After the last
round the database is read directly: every upload the client saw answered
200 must be stored exactly once (one LUT entry per work item, each done item
with its entry, no entry without a done item). Prints rounds, uploads sent,
acknowledged, and what the check found.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwlut.cli.supervisor import free_port  # noqa: E402
from lut_store import Store  # noqa: E402
from lut_store.testing import empty_store  # noqa: E402

ADMIN = "killloop-admin-token"


def serve(db: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "HWLUT_ADMIN_TOKEN": ADMIN, "HWLUT_LOG_LEVEL": "WARNING", "HWLUT_UPLOAD_RATE": "0"}
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "serve", "--port", str(port), "--db", db]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not become ready")


class PrivatePostgres:
    """A PostgreSQL cluster of this bench's own (initdb under ``tmp``, run as the ``postgres`` user when root)."""

    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "pg"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        os.chmod(tmp, 0o777)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")
        self._pg_ctl("start")

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        log = str(self.data.parent / "pg.log")  # the server's output: not a pipe pg_ctl's caller waits on
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", opts, "-w", *extra, action)

    def restart(self) -> None:
        """A fast restart: open connections are cut."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL URL this bench may wipe")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument(
        "--restart-postgres",
        action="store_true",
        help="restart a private PostgreSQL cluster under the stream instead of killing the server",
    )
    args = ap.parse_args()
    rng = random.Random(17)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        private = PrivatePostgres(tmp) if args.restart_postgres else None
        if private is not None:
            store = Store(private.url)
        elif args.db == "sqlite":
            store = Store(f"sqlite:///{tmp / 'kill.db'}")
        else:
            os.environ["HWLUT_TEST_POSTGRES_URL"] = args.db
            store = empty_store("postgres", tmp)
        store.upgrade()
        db = private.url if private else store.url if args.db == "sqlite" else args.db
        proc, url = serve(db, tmp)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=url, timeout=30) as c:
            token = c.post("/v1/devices", json={"name": "k"}, headers=admin).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            jobs = [c.post("/v1/devices/k/jobs", json={"resolution": 32}, headers=auth).json()["id"]]
        acked: list[int] = []
        sent = 0
        per_round: list[int] = []
        for _round in range(args.rounds):
            per_round.append(len(acked))
            stop = threading.Event()

            def stream(base: str, stop: threading.Event) -> None:
                nonlocal sent
                with httpx.Client(base_url=base, timeout=5) as c:
                    while not stop.is_set():
                        try:
                            job = jobs[-1]
                            r = c.post(f"/v1/jobs/{job}/claim", json={"agent": "k", "max_items": 1}, headers=auth)
                            if r.status_code != 200:  # 503 while the database restarts: try again
                                stop.wait(0.05)
                                continue
                            lease = r.json()
                            if not lease.get("items"):  # this job is measured (or leased): a new one
                                r = c.post("/v1/devices/k/jobs", json={"resolution": 32}, headers=auth)
                                if r.status_code == 201:
                                    jobs.append(r.json()["id"])
                                continue
                            item = lease["items"][0]["item_id"]
                            body = {
                                "lease_id": lease["lease_id"],
                                "results": [{"item_id": item, "stats": {"median": 1.0 + item}}],
                            }
                            sent += 1
                            r = c.post(f"/v1/jobs/{job}/results", json=body, headers=auth)
                            if r.status_code == 200 and r.json()["accepted"] == 1:
                                acked.append(item)
                        except (httpx.HTTPError, ValueError):
                            stop.wait(0.05)

            thread = threading.Thread(target=stream, args=(url, stop))
            thread.start()
            time.sleep(rng.uniform(0.2, 1.5))
            if private is not None:  # PostgreSQL restarted under the stream; the server goes on
                private.restart()
                time.sleep(rng.uniform(0.2, 1.0))
                stop.set()
                thread.join()
                continue
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            thread.join()
            proc, url = serve(db, tmp)
        if private is not None:
            with httpx.Client(base_url=url, timeout=30) as c:
                ready = c.get("/ready").status_code
            print(f"server process never restarted: {proc.poll() is None}; /ready after the last restart: {ready}")
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        from sqlalchemy import text

        with store.transaction() as session:
            entries = dict(
                session.execute(text("SELECT work_item_id, COUNT(*) FROM lut_entries GROUP BY work_item_id")).all()
            )
            done = set(session.execute(text("SELECT id FROM work_items WHERE status = 'done'")).scalars())
        store.dispose()
        if private is not None:
            private.stop()
    lost = [i for i in acked if entries.get(i) != 1]
    doubled = [i for i, n in entries.items() if n > 1]
    orphan = set(entries) - done
    half = done - set(entries)
    kind = "sqlite" if args.db == "sqlite" else "postgresql"
    kind = "private postgresql, restarted" if args.restart_postgres else kind
    print(f"bench/killloop.py: db={kind} rounds={args.rounds}")
    print(f"uploads sent {sent}, acknowledged {len(acked)}, stored entries {sum(entries.values())}")
    print(f"acknowledged per round: {[b - a for a, b in zip(per_round, [*per_round[1:], len(acked)], strict=True)]}")
    print(
        f"acknowledged but not stored exactly once: {len(lost)}; stored twice: {len(doubled)}; "
        f"entry without a done item: {len(orphan)}; done item without an entry: {len(half)}"
    )
    print(
        "OK: nothing acknowledged lost or duplicated, nothing half-written"
        if not (lost or doubled or orphan or half)
        else "FAILED"
    )


if __name__ == "__main__":
    main()
