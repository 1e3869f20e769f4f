"""The deployment as written: docker-compose.yml parsed, and its services' command lines run outside a container.

No Docker engine runs here, so the server's command runs against the test
PostgreSQL (host names of the compose network mapped to loopback) and must
answer ``/health`` and ``/ready``; the agent's command then takes a job and
finishes it, and stops on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from test_agent import FAST, KEYS, create_job, poll, progress, register
from testdata import need_postgres

from hwlut.cli.supervisor import free_port, stop_group
from lut_store.testing import empty_store, postgres_url

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` over a parsed document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return _VAR.sub(one, value)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_declares_what_the_deployment_needs() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == {"postgres", "server", "agent"}
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:") and "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume = pg["volumes"][0].split(":")[0]
    assert volume in doc["volumes"]  # a named volume, not a host folder
    server = services["server"]
    assert server["command"][:2] == ["hwlut", "serve"] and "--upgrade" in server["command"]
    assert "--workers" in server["command"] and server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["environment"]["HWLUT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "/ready" in " ".join(server["healthcheck"]["test"])
    agent = services["agent"]
    assert (
        agent["command"][:2] == ["hwlut", "agent"] and agent["depends_on"]["server"]["condition"] == "service_healthy"
    )
    with pytest.raises(KeyError, match="HWLUT_ADMIN_TOKEN"):  # no server without an admin token
        interpolate(server, {})
    readme = (ROOT / "README.md").read_text()
    for name in sorted(set(_VAR.findall(COMPOSE.read_text()))):
        assert name[0] in readme, f"{name[0]} is not documented in the README"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile and re.search(r"^USER (?!root)", dockerfile, re.M)
    assert "-slim" in dockerfile.splitlines()[[ln.startswith("FROM") for ln in dockerfile.splitlines()].index(True)]


def _outside(service: dict[str, Any], url: str, db: str, port: int) -> tuple[list[str], dict[str, str]]:
    """A service's command and environment with the compose network's names mapped to this machine."""
    command = [str(c) for c in service["command"]]
    command = [{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(c, c) for c in command]
    command[0] = str(Path(sys.executable).with_name(command[0]))  # the installed `hwlut`
    env = {**os.environ, **{k: str(v) for k, v in service.get("environment", {}).items()}}
    if "HWLUT_DATABASE_URL" in env:
        env["HWLUT_DATABASE_URL"] = db
    if env.get("HWLUT_SERVER", "").startswith("http://server:"):
        env["HWLUT_SERVER"] = url
    return command, env


@pytest.fixture
def pg_url() -> Iterator[str]:
    need_postgres()
    empty_store("postgres", Path(".")).dispose()  # wiped: the server's --upgrade creates the schema
    yield str(postgres_url())


@pytest.mark.postgres
@pytest.mark.slow
def test_compose_services_run_as_written(pg_url: str, tmp_path: Path) -> None:
    admin = "deploy-admin-token"
    env = {"HWLUT_ADMIN_TOKEN": admin, "HWLUT_WORKERS": "2", "HWLUT_TOKEN": "set-below"}
    services = interpolate(compose()["services"], env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command, server_env = _outside(services["server"], url, pg_url, port)
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(command, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    agent = None
    agent_log = None
    try:

        def answers(path: str) -> bool:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(url + path, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        poll(lambda: answers("/health"), "/health", deadline_s=60)
        poll(lambda: answers("/ready"), "/ready", deadline_s=30)
        assert httpx.get(url + "/ready").json()["status"] == "ready"
        token = register(url, admin)
        job = create_job(url, token, FAST, keys=KEYS[:2])
        command, agent_env = _outside(services["agent"], url, pg_url, port)
        agent_env["HWLUT_TOKEN"] = token
        agent_log = open(tmp_path / "agent.log", "wb")
        agent = subprocess.Popen(command, env=agent_env, stdout=agent_log, stderr=subprocess.STDOUT)
        poll(lambda: progress(url, token, job["id"])["done"] == 2, "the agent finishing the job", deadline_s=300)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0, (tmp_path / "agent.log").read_text()
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        stop_group(server)
        log.close()
        if agent_log is not None:
            agent_log.close()
