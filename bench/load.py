"""A bounded mixed load against a real ``hwlut serve`` on loopback: reads of every kind while agents upload.

    python bench/load.py --db sqlite --workers 1
    python bench/load.py --db "$HWLUT_TEST_POSTGRES_URL" --workers 1 2 4

Per run: a fresh database, a server with ``--workers N``, a device with a
complete FBNet-32 LUT, then for ``--seconds``: ``--clients`` readers (single
entries 70 %, batches of 16 keys 10 %, architecture estimates 10 %, whole
LUT downloads 10 %) and ``--agents`` agents, each claiming 8 items at a time
of its own job and uploading made-up statistics. Prints requests served,
errors, p50/p99 per kind and read throughput, then checks that each agent's
LUT holds exactly what it uploaded (no loss, no duplicate). The load comes
from one asyncio process, which shares the machine's cores with the server:
say so when quoting figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwlut.cli.supervisor import free_port, stop_group  # noqa: E402
from lut_store.testing import empty_store  # noqa: E402
from searchspace import fbnet_space  # noqa: E402

ADMIN = "load-admin-token"
SPACE = fbnet_space(32)
ARCHS = [SPACE.sample(random.Random(i)).encode() for i in range(20)]


def database(kind: str, tmp: Path) -> str:
    """A fresh database URL (``sqlite`` or a PostgreSQL URL that may be wiped)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'load.db'}"
    os.environ["HWLUT_TEST_POSTGRES_URL"] = kind
    empty_store("postgres", tmp).dispose()
    return kind


def start(db: str, workers: int, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "HWLUT_ADMIN_TOKEN": ADMIN, "HWLUT_LOG_LEVEL": "WARNING", "HWLUT_HOME": str(tmp)}
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "serve"]
    cmd += ["--port", str(port), "--workers", str(workers), "--upgrade", "--db", db]
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((tmp / "server.log").read_text()[-2000:])
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def seed(url: str, agents: int) -> tuple[list[str], list[str]]:
    """A device with a complete LUT (its keys), and a device token per agent."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, timeout=60) as c:
        token = c.post("/v1/devices", json={"name": "ref"}, headers=admin).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        job = c.post("/v1/devices/ref/jobs", json={"resolution": 32}, headers=auth).json()["id"]
        lease = c.post(f"/v1/jobs/{job}/claim", json={"agent": "seed", "max_items": 1000}, headers=auth).json()
        results = [{"item_id": i["item_id"], "stats": {"median": 10.0 + n}} for n, i in enumerate(lease["items"])]
        r = c.post(f"/v1/jobs/{job}/results", json={"lease_id": lease["lease_id"], "results": results}, headers=auth)
        assert r.json()["job_status"] == "complete", r.text
        keys = [i["key"] for i in lease["items"] if i["kind"] == "entry"]
        tokens = [
            c.post("/v1/devices", json={"name": f"agent{a}"}, headers=admin).json()["token"] for a in range(agents)
        ]
    return keys, tokens


async def reader(c: httpx.AsyncClient, keys: list[str], until: float, rng: random.Random, log: dict) -> None:
    while time.monotonic() < until:
        roll = rng.random()
        if roll < 0.7:
            kind, req = "entry", c.get(f"/v1/devices/ref/luts/latest/entries/{rng.choice(keys)}")
        elif roll < 0.8:
            kind, req = "batch", c.post("/v1/devices/ref/luts/latest/batch", json={"keys": rng.sample(keys, 16)})
        elif roll < 0.9:
            kind, req = "arch", c.post("/v1/devices/ref/luts/latest/latency", json={"arch": rng.choice(ARCHS)})
        else:
            kind, req = "lut", c.get("/v1/devices/ref/luts/latest")
        await timed(kind, req, log)


async def timed(kind: str, request: Any, log: dict) -> Any:
    t = time.perf_counter()
    try:
        r = await request
        ok = r.status_code < 400
    except httpx.HTTPError:
        r, ok = None, False
    log[kind].append((time.perf_counter() - t) * 1000)
    if not ok:
        log["errors"].append(f"{kind}: {r.status_code if r is not None else 'no answer'}")
    return r


async def agent(c: httpx.AsyncClient, n: int, token: str, until: float, log: dict, uploaded: dict) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    r = await timed("create", c.post(f"/v1/devices/agent{n}/jobs", json={"resolution": 32}, headers=auth), log)
    job = r.json()["id"]
    uploaded[n] = (job, {})
    while time.monotonic() < until:
        r = await timed(
            "claim", c.post(f"/v1/jobs/{job}/claim", json={"agent": f"a{n}", "max_items": 8}, headers=auth), log
        )
        lease = r.json() if r is not None and r.status_code == 200 else None
        if not lease or not lease["items"]:
            break
        results = [
            {"item_id": i["item_id"], "stats": {"median": 1.0 + i["item_id"], "count": 5}}
            for i in lease["items"]
            if i["kind"] == "entry"
        ]
        r = await timed(
            "upload",
            c.post(f"/v1/jobs/{job}/results", json={"lease_id": lease["lease_id"], "results": results}, headers=auth),
            log,
        )
        if r is not None and r.status_code == 200:
            uploaded[n][1].update({i["key"]: 1.0 + i["item_id"] for i in lease["items"] if i["kind"] == "entry"})


async def run_load(url: str, keys: list[str], tokens: list[str], clients: int, seconds: float) -> tuple[dict, dict]:
    log: dict[str, list] = defaultdict(list)
    uploaded: dict[int, tuple[int, dict[str, float]]] = {}
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + len(tokens) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        tasks = [reader(c, keys, until, random.Random(i), log) for i in range(clients)]
        tasks += [agent(c, n, t, until, log, uploaded) for n, t in enumerate(tokens)]
        await asyncio.gather(*tasks)
    return log, uploaded


def check(url: str, uploaded: dict[int, tuple[int, dict[str, float]]]) -> list[str]:
    """Each agent's LUT entries hold exactly its acknowledged uploads."""
    problems = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for n, (job, sent) in uploaded.items():
            r = c.get(f"/v1/devices/agent{n}/luts/{job}", params={"format": "csv"})
            stored: dict[str, float] = {}
            if r.status_code == 200:  # complete: the whole table
                lines = r.text.splitlines()
                head = lines[0].split(",")
                for line in lines[1:]:
                    row = dict(zip(head, line.split(","), strict=False))
                    stored[row["key"]] = float(row["latency_us"])
            else:  # running: ask for each uploaded key
                body = {"keys": list(sent)}
                r = c.post(f"/v1/devices/agent{n}/luts/{job}/batch", json=body)
                if sent and r.status_code != 200:
                    problems.append(f"agent{n}: batch read answered {r.status_code}")
                    continue
                stored = {k: v["latency_us"] for k, v in (r.json().get("entries") or {}).items()} if sent else {}
            if stored != sent:
                problems.append(f"agent{n}: {len(sent)} uploaded, {len(stored)} stored, equal={stored == sent}")
    return problems


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else (values[0] if values else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL URL this bench may wipe")
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    print(
        f"bench/load.py: db={'sqlite' if args.db == 'sqlite' else 'postgresql'} clients={args.clients} "
        f"agents={args.agents} seconds={args.seconds} cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
    )
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            proc, url = start(database(args.db, tmp), workers, tmp)
            try:
                keys, tokens = seed(url, args.agents)
                log, uploaded = asyncio.run(run_load(url, keys, tokens, args.clients, args.seconds))
                problems = check(url, uploaded)
            finally:
                stop_group(proc)
        reads = sum(len(log[k]) for k in ("entry", "batch", "arch", "lut"))
        print(
            f"\nworkers={workers}: {sum(len(v) for k, v in log.items() if k != 'errors')} requests, "
            f"{len(log['errors'])} errors, reads {reads / args.seconds:.0f}/s, "
            f"uploaded {sum(len(s) for _, s in uploaded.values())} results"
        )
        print(f"  {'kind':8} {'n':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for kind in ("entry", "batch", "arch", "lut", "create", "claim", "upload"):
            if log[kind]:
                print(f"  {kind:8} {len(log[kind]):7d} {pct(log[kind], 50):8.2f} {pct(log[kind], 99):8.2f}")
        for line in sorted(set(log["errors"]))[:10]:
            print(f"  error: {line}")
        print("  LUTs hold exactly what was uploaded" if not problems else f"  MISMATCH: {problems}")


if __name__ == "__main__":
    main()
