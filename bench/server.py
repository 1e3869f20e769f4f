"""Benchmark the hwlut server on loopback: single-entry queries beside a bare FastAPI hello.

Two servers run as separate uvicorn processes with identical settings (one
worker, uvloop and httptools where installed, no access log): hwlut on a fresh
SQLite database holding one complete FBNet-224 LUT, and a bare async FastAPI
``/hello``. A separate load process drives them: ``wrk`` (Debian's ``wrk``,
installed here when running as root and missing; min(clients, cores / 2)
threads, so that the server keeps a core) with a small Lua script that
rotates the request path, or, without wrk, a keep-alive asyncio client in its
own process. For 1, 8 and 32 concurrent connections the runs are interleaved
(bare, hwlut, bare, hwlut, ...) because the machine is shared and noisy, and
the table shows medians over the rounds and the median of the paired
throughput ratios hwlut / bare. Then it times the download of the whole LUT.

The hwlut queries rotate over every entry of the LUT, each in its three key
renderings (canonical, HW-NAS-Bench, ProxylessNAS), all against ``latest``.

Goal (issue 4): at 32 clients, single-entry queries reach >= 0.6x the bare
endpoint's throughput with p99 <= 10 ms.

    python bench/server.py                      # full: 5 rounds of 5 s per level
    python bench/server.py --smoke              # a quick look: 1 round of 1 s
    python bench/server.py --read-token         # with HWLUT_READ_TOKEN set on the server
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name
# would shadow the `server` package: drop the folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from urllib.parse import quote  # noqa: E402

import httpx  # noqa: E402

ADMIN_TOKEN = "bench-admin-token"
READ_TOKEN = "bench-read-token"
DEVICE = "bench"


# -- the servers (each in its own process: `bench/server.py _serve KIND PORT`) -------------------
def _bare_app() -> object:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def _serve(kind: str, port: int) -> None:
    """Run one server; both kinds share this very uvicorn configuration."""
    import uvicorn

    if kind == "bare":
        app = _bare_app()
    else:
        from server import create_app

        app = create_app()  # settings from the environment, as `hwlut serve` does
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False, lifespan="on")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A uvicorn subprocess and its base URL."""

    kind: str
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(kind: str, env: dict[str, str], probe: str, log: Path) -> Server:
    """Start ``kind`` (``hwlut`` or ``bare``) and wait until ``probe`` answers 200."""
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "_serve", kind, str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(kind, f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the {kind} server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(server.url + probe, timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the {kind} server did not answer {probe} within 60 s:\n{log.read_text()}")
        time.sleep(0.05)


# -- load: wrk with a path-rotating Lua script, or an asyncio client in its own process ------------
_LUA = """\
local paths = {%(paths)s}
local i = 0
%(headers)s
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"errors": %%d, "bad_status": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One load run: throughput and latency percentiles."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


def _result(raw: dict[str, float], what: str) -> LoadResult:
    if raw["errors"] or raw["bad_status"]:
        raise RuntimeError(f"{what}: {raw['errors']} socket errors, {raw['bad_status']} answers not 2xx")
    return LoadResult(
        raw["requests"] / (raw["duration_us"] / 1e6), raw["p50_us"] / 1e3, raw["p99_us"] / 1e3, raw["requests"]
    )


def find_wrk(install: bool) -> str | None:
    """The ``wrk`` binary; installed with apt-get when missing, ``install`` and running as root."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing Debian's wrk (apt-get install -y wrk)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        print(
            "wrk not found (install it: `apt-get install -y wrk`); using the asyncio load client instead",
            file=sys.stderr,
        )
    return found


def run_wrk(wrk: str, base: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float) -> LoadResult:
    """One wrk run of ``clients`` connections for ``seconds``, rotating over ``paths``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        header_lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
        f.write(_LUA % {"paths": ", ".join(json.dumps(p) for p in paths), "headers": header_lines})
        script = f.name
    try:
        threads = max(1, min(clients, (os.cpu_count() or 2) // 2))  # leave the server a core
        cmd = [
            wrk,
            f"-t{threads}",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-s",
            script,
            base,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    return _result(json.loads(line[len("RESULT ") :]), base + paths[0])


async def _python_load(host: str, port: int, paths: list[str], headers: dict[str, str], clients: int, seconds: float):
    """Keep-alive HTTP/1.1 clients on raw asyncio streams (far lighter than a full client library)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode() for p in paths]
    latencies: list[float] = []
    bad = 0
    stop = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection(host, port)
        i = n
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 2"):
                bad += 1
            i += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "p50_us": pick(0.50) * 1e6,
        "p99_us": pick(0.99) * 1e6,
        "errors": 0,
        "bad_status": bad,
    }


def _load_main(argv: list[str]) -> None:
    """``bench/server.py _load BASE CLIENTS SECONDS`` with paths and headers as JSON on stdin."""
    base, clients, seconds = argv[0], int(argv[1]), float(argv[2])
    spec = json.load(sys.stdin)
    host, port = base.removeprefix("http://").split(":")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(_python_load(host, int(port), spec["paths"], spec["headers"], clients, seconds))
    print("RESULT " + json.dumps(result))


def run_python(base: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float) -> LoadResult:
    """One run of the asyncio load client, in a process of its own."""
    out = subprocess.run(
        [sys.executable, __file__, "_load", base, str(clients), str(seconds)],
        input=json.dumps({"paths": paths, "headers": headers}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return _result(json.loads(line[len("RESULT ") :]), base + paths[0])


# -- the benchmark ----------------------------------------------------------------------------------
def make_database(path: Path) -> tuple[str, list[str]]:
    """A migrated SQLite database with one complete FBNet-224 LUT; its URL and query paths."""
    from lut_store import Store, crud
    from searchspace import fbnet_space

    url = f"sqlite:///{path}"
    store = Store(url)
    store.upgrade()
    space = fbnet_space(224)
    with store.transaction(write=True) as session:
        device, _ = crud.create_device(session=session, name=DEVICE)
        job = crud.create_job(session=session, device=device, spec=space, settings={"runtime": "ort"})
        lease = crud.claim_items(session=session, job=job, agent="bench", max_items=10_000)
        crud.upload_results(
            session=session,
            job=job,
            lease_id=lease.lease_id,
            results=[{"item_id": i.id, "stats": {"median": 100.0 + i.id, "count": 5}} for i in lease.items],
        )
    store.dispose()
    paths = []
    for entry in space.distinct_entries():
        for key in (entry.key, entry.hwnasbench_key(), entry.proxyless_key()):
            paths.append(f"/v1/devices/{DEVICE}/luts/latest/entries/{quote(key, safe='')}")
    return url, paths


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load run (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved bare/hwlut rounds per level (default 5)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent connections")
    parser.add_argument("--smoke", action="store_true", help="a quick look: 1 round of 1 s per level")
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    parser.add_argument("--read-token", action="store_true", help="serve with HWLUT_READ_TOKEN and send it")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds = 1.0, 1

    wrk = None if args.loader == "python" else find_wrk(install=not args.no_install)
    if args.loader == "wrk" and wrk is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    loader = f"wrk ({wrk})" if wrk else "asyncio client (its own process)"

    def load(base: str, paths: list[str], clients: int) -> LoadResult:
        if wrk:
            return run_wrk(wrk, base, paths, headers, clients, args.seconds)
        return run_python(base, paths, headers, clients, args.seconds)

    tmp = Path(tempfile.mkdtemp(prefix="hwlut-bench-"))
    db_url, paths = make_database(tmp / "bench.db")
    env = {**os.environ, "HWLUT_HOME": str(tmp), "HWLUT_DATABASE_URL": db_url, "HWLUT_ADMIN_TOKEN": ADMIN_TOKEN}
    env.pop("HWLUT_READ_TOKEN", None)
    headers: dict[str, str] = {}
    if args.read_token:
        env["HWLUT_READ_TOKEN"] = READ_TOKEN
        headers["Authorization"] = f"Bearer {READ_TOKEN}"
    servers = {
        "bare": start_server("bare", env, "/hello", tmp / "bare.log"),
        "hwlut": start_server("hwlut", env, "/v1/health", tmp / "hwlut.log"),
    }
    work = {"bare": ["/hello"], "hwlut": paths}
    try:
        print(
            f"single-entry query ({len(paths)} keys rotated, latest) vs bare FastAPI hello; "
            f"uvicorn, 1 worker each, loopback; load: {loader}"
        )
        print(f"{args.rounds} interleaved round(s) of {args.seconds:g} s per level; medians over rounds")
        for kind in ("bare", "hwlut"):  # warm up: imports, caches, first connections
            load(servers[kind].url, work[kind], max(args.clients))
        print(
            f"{'clients':>7} {'hwlut req/s':>12} {'p50 ms':>7} {'p99 ms':>7} {'bare req/s':>11} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'ratio':>6}"
        )
        summary: dict[int, tuple[float, float]] = {}
        for clients in args.clients:
            runs: dict[str, list[LoadResult]] = {"bare": [], "hwlut": []}
            for _ in range(args.rounds):
                for kind in ("bare", "hwlut"):
                    runs[kind].append(load(servers[kind].url, work[kind], clients))
            q, b = runs["hwlut"], runs["bare"]
            ratio = _median([x.rps / y.rps for x, y in zip(q, b, strict=True)])
            q_p99 = _median([r.p99_ms for r in q])
            summary[clients] = (ratio, q_p99)
            print(
                f"{clients:>7} {_median([r.rps for r in q]):>12.0f} {_median([r.p50_ms for r in q]):>7.2f} "
                f"{q_p99:>7.2f} {_median([r.rps for r in b]):>11.0f} {_median([r.p50_ms for r in b]):>7.2f} "
                f"{_median([r.p99_ms for r in b]):>7.2f} {ratio:>6.2f}"
            )
        top = max(args.clients)
        ratio, p99 = summary[top]
        met = ratio >= 0.6 and p99 <= 10.0
        print(
            f"goal at {top} clients: ratio >= 0.60 and p99 <= 10 ms: ratio {ratio:.2f}, p99 {p99:.2f} ms -> "
            f"{'met' if met else 'NOT met'}"
        )

        base = servers["hwlut"].url
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            for fmt in ("hwlut", "csv"):
                times = []
                for _ in range(6 if args.smoke else 21):
                    t0 = time.perf_counter()
                    r = http.get(f"/v1/devices/{DEVICE}/luts/latest", params={"format": fmt})
                    times.append(time.perf_counter() - t0)
                    r.raise_for_status()
                print(
                    f"whole LUT ({len(paths) // 3} entries, {fmt}, {len(r.content)} bytes): "
                    f"first {times[0] * 1e3:.2f} ms, then median {_median(times[1:]) * 1e3:.2f} ms"
                )
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_load":
        _load_main(sys.argv[2:])
    else:
        main()
