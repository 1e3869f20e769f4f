"""Several uvicorn workers on PostgreSQL: each serves the LUT another worker completed, within the cache TTL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_agent import poll
from testdata import need_postgres

from hwlut.cli.supervisor import free_port, stop_group
from lut_store.testing import empty_store, postgres_url
from searchspace import fbnet_space

ADMIN = "workers-admin-token"
KEYS = [e.key for e in fbnet_space(32).distinct_entries()[:3]]
TTL_S = 0.5


def _complete_job(c: httpx.Client, token: str, median: float) -> int:
    auth = {"Authorization": f"Bearer {token}"}
    job = c.post("/v1/devices/w/jobs", json={"resolution": 32}, headers=auth).json()["id"]  # whole: `latest` names it
    lease = c.post(f"/v1/jobs/{job}/claim", json={"agent": "t", "max_items": 1000}, headers=auth).json()
    results = [{"item_id": i["item_id"], "stats": {"median": median}} for i in lease["items"]]
    r = c.post(f"/v1/jobs/{job}/results", json={"lease_id": lease["lease_id"], "results": results}, headers=auth)
    assert r.json()["job_status"] == "complete", r.text
    return job


def _fresh_reads(url: str, n: int) -> list[float]:
    """``latest``'s first entry read on ``n`` new connections (each may land on any worker)."""
    out = []
    for _ in range(n):
        with httpx.Client(base_url=url, timeout=10) as c:
            r = c.get(f"/v1/devices/w/luts/latest/entries/{KEYS[0]}")
            assert r.status_code == 200, r.text
            out.append(r.json()["latency_us"])
    return out


@pytest.mark.postgres
def test_a_lut_completed_through_one_worker_is_served_by_all(tmp_path: Path) -> None:
    need_postgres()
    empty_store("postgres", tmp_path).dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HWLUT_ADMIN_TOKEN": ADMIN, "HWLUT_LUT_CACHE_TTL_S": str(TTL_S)}
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "serve", "--port", str(port)]
    cmd += ["--workers", "2", "--upgrade", "--db", str(postgres_url())]
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:

        def up() -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(url + "/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        poll(up, "the server ready", deadline_s=90)
        with httpx.Client(base_url=url, timeout=30) as c:
            r = c.post("/v1/devices", json={"name": "w"}, headers={"Authorization": f"Bearer {ADMIN}"})
            token = r.json()["token"]
            _complete_job(c, token, 100.0)
            assert set(_fresh_reads(url, 12)) == {100.0}  # both workers now hold the first LUT as latest
            _complete_job(c, token, 200.0)
            done = time.monotonic()
        poll(lambda: time.monotonic() - done > TTL_S, "the cache TTL to pass", deadline_s=5)
        assert set(_fresh_reads(url, 12)) == {200.0}
    finally:
        stop_group(server)
        log.close()
