"""Benchmark the hwlut server on loopback: single-entry query throughput and latency.

Starts a real uvicorn (one worker) on a fresh SQLite database with one
complete FBNet LUT, and beside it a bare FastAPI hello endpoint in its own
uvicorn; then, for 1, 8 and 32 concurrent clients (httpx, async, keep-alive),
measures requests/s and p50/p99 for both, prints the ratio, and times the
download of the whole LUT. Goal (issue 4): ≥ 0.6x the bare endpoint's
throughput and p99 ≤ 10 ms at 32 clients. Run: ``python bench/server.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name
# would shadow the `server` package: drop the folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from lut_store import Store, crud  # noqa: E402
from searchspace import fbnet_space  # noqa: E402
from server import Settings, create_app  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app: object) -> tuple[str, uvicorn.Server]:
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server


async def _load(url: str, clients: int, seconds: float) -> tuple[float, float, float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:

        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await http.get(url)
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    return len(latencies) / elapsed, statistics.median(latencies) * 1e3, p99 * 1e3


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each load run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    store = Store(f"sqlite:///{tmp / 'bench.db'}")
    store.upgrade()
    space = fbnet_space(224)
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name="bench")
        job = crud.create_job(session=session, device=device, spec=space, runtime="none")
        lease = crud.claim_items(session=session, job=job, agent="bench", max_items=10_000)
        crud.upload_results(
            session=session,
            job=job,
            lease_id=lease.lease_id,
            results=[{"item_id": i.id, "stats": {"median": 100.0 + i.id}} for i in lease.items],
        )
    key = space.layers[7].entry("k5_e6").key
    hwlut_url, hwlut_server = _serve(create_app(Settings(admin_token="x"), store=store))

    bare = FastAPI()

    @bare.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    bare_url, bare_server = _serve(bare)
    query = f"{hwlut_url}/v1/devices/bench/luts/latest/entries/{key}"
    print(f"single-entry query vs bare FastAPI hello, {args.seconds:g} s per run, loopback, 1 uvicorn worker each")
    print(
        f"{'clients':>7} {'hwlut req/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'bare req/s':>11} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'ratio':>6}"
    )
    for clients in (1, 8, 32):
        q = asyncio.run(_load(query, clients, args.seconds))
        b = asyncio.run(_load(f"{bare_url}/hello", clients, args.seconds))
        print(
            f"{clients:>7} {q[0]:>12.0f} {q[1]:>7.2f} {q[2]:>7.2f} {b[0]:>11.0f} {b[1]:>7.2f} {b[2]:>7.2f} "
            f"{q[0] / b[0]:>6.2f}"
        )
    for fmt in ("hwlut", "csv"):
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            r = httpx.get(f"{hwlut_url}/v1/devices/bench/luts/latest", params={"format": fmt})
            r.raise_for_status()
            times.append(time.perf_counter() - t0)
        print(
            f"whole LUT ({len(lease.items)} entries, {fmt}, {len(r.content)} bytes): "
            f"median {statistics.median(times) * 1e3:.2f} ms"
        )
    hwlut_server.should_exit = bare_server.should_exit = True
    store.dispose()


if __name__ == "__main__":
    main()
