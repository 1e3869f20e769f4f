"""The device agent against a real ``hwlut serve`` on 127.0.0.1: agents run as subprocesses, real onnxruntime.

Each test serves a fresh SQLite database and a job restricted to a few
entries of FBNet-32 (the artifact cache is shared by the test session).
Kill tests use SIGKILL / SIGTERM on subprocesses; every wait polls with a
deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hwlut.cli.quickstart import local_server
from hwlut.client import HwlutClient, ServerUnreachable
from profiler.agent import AgentConfig, Outbox, SettingsMismatch, canonical_runtime, runtime_for_job
from searchspace import fbnet_space

pytestmark = pytest.mark.slow

#: Fast, loose protocol: a whole small job in seconds.
FAST = {"target_rel_ci": 0.2, "time_cap_s": 0.1, "warmup_s": 0.05, "slice_s": 0.01, "min_passes": 1, "warmup_runs": 2}
#: Every entry runs to its time cap (the CI target is out of reach): a job that lasts long enough to be interrupted.
SLOW = {"target_rel_ci": 1e-9, "time_cap_s": 0.5, "warmup_s": 0.05, "slice_s": 0.05, "warmup_runs": 2}
KEYS = [e.key for e in fbnet_space(32).distinct_entries()[:9]]


def poll(predicate: Callable[[], object], what: str, deadline_s: float = 120.0) -> None:
    """Wait until ``predicate()`` holds, or fail naming ``what``."""
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The server's home (its SQLite database) for one test."""
    folder = tmp_path / "server-home"
    folder.mkdir()
    return folder


@pytest.fixture
def server(home: Path) -> Iterator[tuple[str, str]]:
    """A real ``hwlut serve`` subprocess on a free loopback port: (url, admin token)."""
    with local_server(home) as (url, admin, _proc):
        yield url, admin


def register(url: str, admin: str, name: str = "box") -> str:
    """A device's token."""
    with HwlutClient(url, token=admin) as client:
        return client.create_device(name)["token"]


def create_job(url: str, token: str, protocol: dict, *, keys: list[str] = KEYS, threads: int = 1, **kw) -> dict:
    """A job of FBNet-32 on onnxruntime restricted to ``keys``."""
    with HwlutClient(url, token=token) as client:
        return client.create_job(
            "box",
            resolution=32,
            runtime="onnxruntime",
            threads=threads,
            options={"protocol": protocol},
            entries=keys,
            **kw,
        )


class AgentProcess:
    """``hwlut agent`` in a subprocess; its output goes to a file read while it runs."""

    def __init__(self, tmp: Path, url: str, token: str, *args: str, name: str = "agent") -> None:
        self.log = tmp / f"{name}-{time.monotonic_ns()}.log"
        cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "agent", "--server", url, "--token", token]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([*cmd, *args], stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))

    def text(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(errors="replace")

    def measured(self) -> list[str]:
        """Keys of the ``measured`` lines."""
        return [
            part.removeprefix("key=")
            for line in self.text().splitlines()
            if line.startswith("measured ")
            for part in line.split()
            if part.startswith("key=")
        ]

    def wait(self, timeout: float = 180.0) -> int:
        """Its exit status (killed and failed when it does not stop in time)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the agent did not exit:\n{self.text()[-3000:]}") from None

    def stop(self) -> None:
        """Kill it if it still runs (test cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    """Agent processes started by a test, killed at its end whatever happened."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def progress(url: str, token: str, job_id: int) -> dict:
    """A job's progress counts."""
    with HwlutClient(url, token=token) as client:
        return client.job(job_id)["progress"]


def lease_records() -> list[Path]:
    """Leases that agents under this session's HWLUT_HOME recorded as being measured."""
    return list((Path(os.environ["HWLUT_HOME"]) / "agents").glob("*/slot-*/leases/*.json"))


def outbox_files() -> list[Path]:
    """Results waiting in any agent's outbox under this session's HWLUT_HOME."""
    return list((Path(os.environ["HWLUT_HOME"]) / "agents").glob("*/slot-*/outbox/*.json"))


def test_whole_job_completes_and_its_lut_is_served(server, tmp_path, agents) -> None:
    url, admin = server
    token = register(url, admin)
    job = create_job(url, token, FAST)
    assert job["progress"]["total"] == len(KEYS) and job["options"]["entries"] == KEYS
    agent = AgentProcess(tmp_path, url, token, "--once", "--batch", "4")
    agents.append(agent)
    assert agent.wait() == 0, agent.text()
    assert sorted(agent.measured()) == sorted(KEYS)
    with HwlutClient(url, token=token) as client:
        assert client.job(job["id"])["status"] == "complete"
        lut = client.lut("box", job["id"])
        assert sorted(lut.entries) == sorted(KEYS)
        stats = lut.entries[KEYS[0]]
        assert stats["median"] > 0 and stats["stop_reason"] in ("ci", "time_cap") and stats["count"] >= 1
        prov = lut.provenance
        assert prov["runtime"]["runtime"] == "ort" and prov["runtime"]["threads"] == 1
        assert prov["protocol"]["time_cap_s"] == FAST["time_cap_s"] and prov["host"]["cpu_model"]
        assert lut.overhead_us is not None and lut.overhead_us > 0
        served = client.entry("box", KEYS[3])  # "latest": the newest complete LUT
        assert served["latency_us"] == pytest.approx(lut.entries[KEYS[3]]["median"])
    assert not outbox_files()


def test_agent_killed_then_restarted_measures_each_item_once(server, tmp_path, agents) -> None:
    url, admin = server
    token = register(url, admin)
    # A kill between the server granting a claim and the agent recording the lease on disk
    # leaves a lease the restarted agent cannot hand back: it expires, and the restarted
    # agent takes its items (the fallback). A short lease keeps that case within
    # the test's time; the kill is aimed at a recorded lease, the usual case.
    job = create_job(url, token, SLOW, lease_seconds=15.0)
    first = AgentProcess(tmp_path, url, token, "--once", "--batch", "2")
    agents.append(first)
    poll(
        lambda: progress(url, token, job["id"])["done"] >= 2 and lease_records(),
        "a first upload while a lease is recorded",
    )
    first.proc.send_signal(signal.SIGKILL)
    first.wait()
    recorded = lease_records()  # what the dead agent left: the restarted one must hand it back
    after_kill = progress(url, token, job["id"])
    assert after_kill["done"] < len(KEYS), "the job ended before the kill: make SLOW slower"
    assert after_kill["leased"] >= 1  # the dead agent's lease still holds items

    second = AgentProcess(tmp_path, url, token, "--once", "--batch", "2")
    agents.append(second)
    assert second.wait() == 0, second.text()
    counts = Counter(first.measured() + second.measured())
    assert all(n == 1 for n in counts.values()), counts
    assert progress(url, token, job["id"])["done"] == len(KEYS)
    with HwlutClient(url, token=token) as client:
        assert client.job(job["id"])["status"] == "complete"
        assert sorted(client.lut("box", job["id"]).entries) == sorted(KEYS)
    if recorded:  # the restarted agent handed back the dead lease instead of waiting for it to expire
        assert "handed back" in second.text(), second.text()
    assert set(second.measured()) | set(first.measured()) == set(KEYS)


def test_server_restarted_mid_job_nothing_lost(home, tmp_path, agents) -> None:
    with local_server(home) as (url, admin, _proc):
        token = register(url, admin)
        job = create_job(url, token, SLOW)
        agent = AgentProcess(tmp_path, url, token, "--once", "--batch", "2", "--patience", "120")
        agents.append(agent)
        poll(lambda: progress(url, token, job["id"])["done"] >= 2, "a first upload")
        port = int(url.rsplit(":", 1)[1])
    # the server is down; the agent measures on and keeps what it measures in its outbox
    with HwlutClient(url, token=token, timeout=1.0, retries=0) as client:
        with pytest.raises(ServerUnreachable):
            client.health()
    seen = len(agent.measured())
    poll(lambda: len(agent.measured()) > seen, "an entry measured while the server is down")
    assert agent.proc.poll() is None
    with local_server(home, port=port, admin_token=admin):
        assert agent.wait() == 0, agent.text()
        counts = Counter(agent.measured())
        assert sorted(counts) == sorted(KEYS) and set(counts.values()) == {1}
        with HwlutClient(url, token=token) as client:
            assert client.job(job["id"])["status"] == "complete"
            lut = client.lut("box", job["id"])
            assert sorted(lut.entries) == sorted(KEYS)
    assert "server unreachable" in agent.text()
    assert not outbox_files()


def test_two_agents_share_a_job_never_measuring_an_item_twice(server, tmp_path, agents) -> None:
    url, admin = server
    token = register(url, admin)
    job = create_job(url, token, {**SLOW, "time_cap_s": 0.2})
    pair = [AgentProcess(tmp_path, url, token, "--once", "--batch", "2", name=f"a{n}") for n in range(2)]
    agents.extend(pair)
    for agent in pair:
        assert agent.wait() == 0, agent.text()
    a, b = (Counter(agent.measured()) for agent in pair)
    assert not set(a) & set(b), (a, b)
    assert set(a.values()) | set(b.values()) <= {1}
    assert sorted([*a, *b]) == sorted(KEYS)
    with HwlutClient(url, token=token) as client:
        assert client.job(job["id"])["status"] == "complete"


def test_settings_mismatch_is_refused_before_measuring(server, tmp_path, agents) -> None:
    url, admin = server
    token = register(url, admin)
    job = create_job(url, token, FAST)
    threads = AgentProcess(tmp_path, url, token, "--once", "--job", str(job["id"]), "--threads", "2")
    runtime = AgentProcess(tmp_path, url, token, "--once", "--runtime", "tflite")
    agents.extend([threads, runtime])
    assert threads.wait() == 2 and "threads: the job wants 1, this agent runs 2" in threads.text()
    assert runtime.wait() == 2 and "the job wants ort, this agent runs tflite" in runtime.text()
    assert progress(url, token, job["id"]) == {"pending": len(KEYS), "leased": 0, "done": 0, "failed": 0, "total": 9}

    # results measured elsewhere (another CPU) are in the job: this agent may not add to it
    with HwlutClient(url, token=token) as client:
        lease = client.claim(job["id"], agent="elsewhere", max_items=1)
        settings = runtime_for_job(job, AgentConfig(server=url, token=token)).settings()
        other = {"runtime": settings, "host": {"cpu_model": "Another CPU", "machine": "x86_64"}}
        client.upload(
            job["id"], lease.lease_id, [{"item_id": lease.items[0].item_id, "stats": {"median": 5.0}}], provenance=other
        )
    cpu = AgentProcess(tmp_path, url, token, "--once")
    agents.append(cpu)
    assert cpu.wait() == 2 and "host.cpu_model" in cpu.text() and "refused before measuring" in cpu.text()
    assert progress(url, token, job["id"])["done"] == 1


def test_runtime_for_job_takes_or_checks_the_jobs_settings() -> None:
    job = {"id": 7, "runtime": "litert", "threads": 2, "options": {"xnnpack": False}}
    rt = runtime_for_job(job, AgentConfig(server="http://x", token="t"))
    assert rt.settings()["threads"] == 2 and rt.settings()["xnnpack"] is False and rt.name == "tflite"
    with pytest.raises(SettingsMismatch, match="xnnpack"):
        runtime_for_job(job, AgentConfig(server="http://x", token="t", xnnpack=True))
    with pytest.raises(SettingsMismatch, match="optimization"):
        runtime_for_job(job, AgentConfig(server="http://x", token="t", optimization="basic"))
    with pytest.raises(SettingsMismatch, match="not one an agent runs"):
        runtime_for_job({**job, "runtime": "tensorrt"}, AgentConfig(server="http://x", token="t"))
    assert canonical_runtime("ONNXRuntime") == "ort" and canonical_runtime("coreml") is None
    with pytest.raises(ValueError, match="unknown runtime"):
        AgentConfig(server="http://x", token="t", runtime="coreml")


def test_outbox_keeps_results_until_acknowledged(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    record = {"job_id": 1, "lease_id": "L", "item_id": 4, "key": "k", "stats": {"median": 3.0}}
    path = box.put(record)
    box.begin_lease(1, "L", [4, 5])
    again = Outbox(tmp_path)  # a restarted agent sees both
    assert [r for _, r in again.pending()] == [record]
    assert again.leases() == [{"job_id": 1, "lease_id": "L", "items": [4, 5]}]
    again.reject(path, "HTTP 409")
    assert not again.pending() and (tmp_path / "rejected" / path.name).exists()
    again.end_lease("L")
    assert not again.leases()


def test_sigterm_hands_back_the_batch_then_another_agent_finishes(server, tmp_path, agents) -> None:
    url, admin = server
    token = register(url, admin)
    job = create_job(url, token, SLOW)
    first = AgentProcess(tmp_path, url, token, "--once", "--batch", "4")
    agents.append(first)
    poll(lambda: first.measured(), "a first entry measured")
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait() == 0, first.text()
    after = progress(url, token, job["id"])
    assert after["leased"] == 0 and after["done"] == len(first.measured()) < len(KEYS), (after, first.text())
    assert not outbox_files()
    second = AgentProcess(tmp_path, url, token, "--once", "--batch", "4")
    agents.append(second)
    assert second.wait() == 0, second.text()
    assert sorted(first.measured() + second.measured()) == sorted(KEYS)


def test_cli_register_list_create_status(server) -> None:
    from typer.testing import CliRunner

    from hwlut.cli import app
    from hwlut.client import Invalid

    url, admin = server
    runner = CliRunner()
    env = {"HWLUT_ADMIN_TOKEN": admin, "HWLUT_SERVER": url, "HWLUT_TOKEN": ""}
    done = runner.invoke(app, ["device", "register", "cli-box", "--description", "a test box"], env=env)
    assert done.exit_code == 0, done.output
    token = done.output.strip().splitlines()[-1]
    assert token.startswith("hwlut_")
    assert runner.invoke(app, ["device", "add", "cli-box"], env=env).exit_code == 1  # the alias; the name is taken
    listed = runner.invoke(app, ["device", "list", "--json"], env=env)
    assert json.loads(listed.output.splitlines()[0])["name"] == "cli-box"
    created = runner.invoke(
        app,
        ["job", "create", "--device", "cli-box", "-r", "32", "--runtime", "ort", "--threads", "1", "--entry", KEYS[0]],
        env={**env, "HWLUT_TOKEN": token},
    )
    assert created.exit_code == 0, created.output
    job = json.loads(created.output)
    assert job["threads"] == 1 and job["runtime"] == "ort" and job["progress"]["total"] == 1
    status = runner.invoke(app, ["job", "status", str(job["id"])], env=env)
    assert status.exit_code == 0 and "0/1 done (0%)" in status.output and "1 pending" in status.output
    with HwlutClient(url, token=token) as client, pytest.raises(Invalid) as bad:
        client.create_job("cli-box", resolution=32, entries=["tbs_h224_w224_cin3_cout16_s1_k3_e1_g1"])
    assert bad.value.problems[0]["loc"][-1] == "entries[0]"
