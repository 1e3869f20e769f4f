"""A real uvicorn on a loopback port, driven by hwlut's HTTP client, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from testdata import need_postgres

from lut_store import Store
from lut_store.testing import empty_store
from lutclient import Conflict, HwlutClient, Invalid, NotFound, ServerUnreachable, Unauthorized
from searchspace import fbnet_space
from server import Settings, create_app

ADMIN = "wire-admin-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _poll(predicate, what: str, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A uvicorn serving a fresh database on 127.0.0.1."""
    if request.param == "postgres":
        need_postgres()
    store: Store = empty_store(request.param, tmp_path)
    store.upgrade()
    port = _free_port()
    app = create_app(Settings(admin_token=ADMIN), store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _poll(lambda: server.started, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)
    store.dispose()


def test_agents_over_the_wire(server_url: str) -> None:
    with HwlutClient(server_url, token=ADMIN) as admin:
        token = admin.create_device("phone", hardware={"soc": "tensor"})["token"]
        with pytest.raises(Conflict):
            admin.create_device("phone")
    with HwlutClient(server_url) as anon, pytest.raises(Unauthorized):
        anon.create_device("x")
    agent = HwlutClient(server_url, token=token)
    job = agent.create_job("phone", resolution=32, lease_seconds=60)
    total = job["progress"]["total"]

    # two agents claim at once: never the same item
    claimed: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def claim_all(n: int) -> None:
        with HwlutClient(server_url, token=token) as client:
            barrier.wait(timeout=10)
            while True:
                lease = client.claim(job["id"], agent=f"agent{n}", max_items=5)
                if not lease.items:
                    return
                claimed[n].extend(i.item_id for i in lease.items)
                client.upload(
                    job["id"],
                    lease.lease_id,
                    [{"item_id": i.item_id, "stats": {"median": 10.0 + i.entry.cin}} for i in lease.items],
                )

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == total
    assert agent.job(job["id"])["status"] == "complete"

    lut = agent.lut("phone")
    assert lut.complete and len(lut.entries) == total
    arch = ",".join(["k5_e6"] * 22)
    answer = agent.architecture_latency("phone", arch)
    assert answer["total_us"] == pytest.approx(lut.network_latency(arch)) and answer["complete"]
    entry = fbnet_space(32).layers[3].entry("skip")
    assert agent.entry("phone", entry.hwnasbench_key())["latency_us"] == 10.0 + entry.cin
    with pytest.raises(NotFound):
        agent.entry("phone", "tbs_h9_w9_cin8_cout8_s1_k3_e1_g1")
    with pytest.raises(Invalid) as bad:
        agent.entry("phone", "tbs_h9_w9_cin8_cout8_s1_k4_e1_g1")
    assert bad.value.problems[0]["loc"] == ["path", "key"]
    agent.close()


def test_lease_expiry_retry_and_idempotent_upload(server_url: str) -> None:
    with HwlutClient(server_url, token=ADMIN) as admin:
        token = admin.create_device("slow")["token"]
    with HwlutClient(server_url, token=token) as client:
        job = client.create_job("slow", resolution=32, max_attempts=2)
        first = client.claim(job["id"], agent="crashy", max_items=2, lease_seconds=0.2)
        assert len(first.items) == 2
        # the lease lapses: the same items come back to another agent (polled, no fixed sleep)
        got: list = []

        def reclaimed() -> bool:
            lease = client.claim(job["id"], agent="steady", max_items=2, lease_seconds=60)
            got.append(lease)
            return {i.item_id for i in lease.items} == {i.item_id for i in first.items}

        _poll(reclaimed, "the expired lease to be reclaimed")
        lease = got[-1]
        results = [{"item_id": i.item_id, "stats": {"median": 3.0}} for i in lease.items[:1]]
        assert client.upload(job["id"], lease.lease_id, results)["accepted"] == 1
        again = client.upload(job["id"], lease.lease_id, results)
        assert (again["accepted"], again["duplicates"]) == (0, 1)
        with pytest.raises(Conflict):  # the crashed agent's lease is gone
            client.upload(job["id"], first.lease_id, [{"item_id": lease.items[1].item_id, "stats": {"median": 1}}])
        assert client.heartbeat(job["id"], lease.lease_id)["items"] == 1
        failed = client.fail(job["id"], lease.lease_id, lease.items[1].item_id, "segfault")
        assert failed["status"] == "pending"


def test_unreachable_server() -> None:
    with HwlutClient(f"http://127.0.0.1:{_free_port()}", retries=0, timeout=2.0) as client:
        with pytest.raises(ServerUnreachable):
            client.health()
