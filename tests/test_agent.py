"""The device agent against a real ``hwlut serve`` on 127.0.0.1: agents run as subprocesses, real onnxruntime.

Each test serves a fresh SQLite database and a job restricted to a few
entries of FBNet-32 (the artifact cache is shared by the test session).
Kill tests use SIGKILL / SIGTERM on subprocesses; every wait polls with a
deadline.
"""

from __future__ import annotations

import hashlib
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

from hwlut.cli.supervisor import local_server
from lutclient import HwlutClient, NotFound, ServerUnreachable
from profiler.agent import AgentConfig, Outbox, SettingsMismatch, canonical_runtime, runtime_for_job
from searchspace import fbnet_space, network_item_key

pytestmark = pytest.mark.slow

#: Fast, loose protocol: a whole small job in seconds.
FAST = {
    "target_rel_ci": 0.2, "time_cap_s": 0.1, "warmup_s": 0.05, "slice_s": 0.01, "sentinel_slice_s": 0.005,
    "min_passes": 1, "min_runs_per_pass": 3, "warmup_runs": 2,
}  # fmt: skip
#: Every entry runs to its time cap (the CI target is out of reach): a job that lasts long enough to be interrupted.
SLOW = {
    "target_rel_ci": 1e-9, "time_cap_s": 0.5, "warmup_s": 0.05, "slice_s": 0.05, "sentinel_slice_s": 0.025,
    "min_passes": 3, "min_runs_per_pass": 3, "warmup_runs": 2,
}  # fmt: skip
KEYS = [e.key for e in fbnet_space(32).distinct_entries()[:9]]
ARCH = ",".join(["k3_e1"] * 22)


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


def agent_ident(url: str, token: str) -> str:
    """The folder under ``$HWLUT_HOME/agents`` of an agent of ``url`` with ``token`` (as the agent names it)."""
    return hashlib.sha256(f"{url.rstrip('/')}\n{token}".encode()).hexdigest()[:16]


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
    agent = AgentProcess(tmp_path, url, token, "--once", "--batch", "4", "--calm-wait", "0.2")
    agents.append(agent)
    assert agent.wait() == 0, agent.text()
    assert sorted(agent.measured()) == sorted(KEYS)
    with HwlutClient(url, token=token) as client:
        assert client.job(job["id"])["status"] == "complete"
        calm = client.lut("box", job["id"]).provenance["calm"]  # a gate per lease; the server keeps the newest totals
        assert calm["count"] == -(-len(KEYS) // 4) and calm["build_wait_s"] == 0.2 and calm["batch_wait_s"] == 0.1
        assert [g["at"] for g in calm["gates"]][-1] == f"job {job['id']}"
        lut = client.lut("box", job["id"])
        assert sorted(lut.entries) == sorted(KEYS)
        stats = lut.entries[KEYS[0]]
        assert stats["median"] > 0 and stats["stop_reason"] in ("ci", "time_cap") and stats["count"] >= 1
        prov = lut.provenance
        assert prov["runtime"]["runtime"] == "ort" and prov["runtime"]["threads"] == 1
        assert prov["protocol"]["time_cap_s"] == FAST["time_cap_s"] and prov["host"]["cpu_model"]
        assert lut.overhead_us is not None and lut.overhead_us > 0
        served = client.entry("box", KEYS[3], lut=job["id"])
        assert served["latency_us"] == pytest.approx(lut.entries[KEYS[3]]["median"])
        with pytest.raises(NotFound, match=rf"only partial LUTs \(job {job['id']}.*--job {job['id']}"):
            client.entry("box", KEYS[3])  # a job restricted to a few entries is never `latest`
    assert not outbox_files()


def test_agent_killed_then_restarted_measures_each_item_once(server, tmp_path, agents) -> None:
    url, admin = server
    token = register(url, admin)
    # The default lease (300 s) is longer than the test may wait: the restarted agent must hand the
    # dead agent's lease back (its id is on disk before every claim), not wait for it to expire.
    job = create_job(url, token, SLOW)
    first = AgentProcess(tmp_path, url, token, "--once", "--batch", "2")
    agents.append(first)
    poll(lambda: progress(url, token, job["id"])["done"] >= 2, "a first upload")
    first.proc.send_signal(signal.SIGKILL)
    first.wait()
    after_kill = progress(url, token, job["id"])
    assert after_kill["done"] < len(KEYS), "the job ended before the kill: make SLOW slower"

    second = AgentProcess(tmp_path, url, token, "--once", "--batch", "2")
    agents.append(second)
    assert second.wait() == 0, second.text()
    counts = Counter(first.measured() + second.measured())
    assert all(n == 1 for n in counts.values()), counts
    assert progress(url, token, job["id"])["done"] == len(KEYS)
    with HwlutClient(url, token=token) as client:
        assert client.job(job["id"])["status"] == "complete"
        assert sorted(client.lut("box", job["id"]).entries) == sorted(KEYS)
    if after_kill["leased"]:  # the dead agent held a lease: the restarted one handed it back
        assert "handed back" in second.text(), second.text()
    assert set(second.measured()) | set(first.measured()) == set(KEYS)
    assert not lease_records()


def test_a_claim_granted_but_never_recorded_is_handed_back_by_its_id(server, tmp_path, agents) -> None:
    """The gap of a kill between the server granting a claim and the agent hearing of it."""
    url, admin = server
    token = register(url, admin)
    job = create_job(url, token, FAST, keys=KEYS[:3])
    lease_id = "f" * 32
    # What a dead agent leaves: the lease's id on disk (written before it asked), no items ...
    slot = Path(os.environ["HWLUT_HOME"]) / "agents" / agent_ident(url, token) / "slot-1"
    Outbox(slot).begin_lease(job["id"], lease_id, None)
    # ... and on the server, the items it was granted (a retried claim with the same id gets the same ones)
    with HwlutClient(url, token=token) as client:
        granted = client.claim(job["id"], agent="dead", max_items=2, lease_id=lease_id)
        again = client.claim(job["id"], agent="dead", max_items=2, lease_id=lease_id)
        assert [i.item_id for i in granted.items] == [i.item_id for i in again.items] and len(granted.items) == 2
        assert client.job(job["id"])["progress"]["leased"] == 2
    agent = AgentProcess(tmp_path, url, token, "--once", "--batch", "3")
    agents.append(agent)
    assert agent.wait(timeout=120) == 0, agent.text()
    assert "handed back 2 unmeasured item(s)" in agent.text(), agent.text()
    assert sorted(agent.measured()) == sorted(KEYS[:3])
    assert progress(url, token, job["id"])["done"] == 3


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
    # the job's cache mode: the entries' runtime is wrapped, absent means warm (jobs made before modes existed)
    assert "cache_mode" not in rt.settings()
    l2 = runtime_for_job({**job, "options": {"cache_mode": "l2"}}, AgentConfig(server="http://x", token="t"))
    assert l2.settings()["cache_mode"] == "l2" and l2.settings()["threads"] == 2
    with pytest.raises(SettingsMismatch, match="unknown cache mode"):
        runtime_for_job({**job, "options": {"cache_mode": "tepid"}}, AgentConfig(server="http://x", token="t"))
    adb_job = {"id": 8, "runtime": "adb", "threads": 1, "options": {"cache_mode": "l2"}}
    with pytest.raises(SettingsMismatch, match="phone"):
        runtime_for_job(adb_job, AgentConfig(server="http://x", token="t"))


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


def _variant(**changes: str) -> str:
    """FBNet-32's all-``k3_e1`` network with some layers changed (``l2="k3_e3"``)."""
    ops = ["k3_e1"] * 22
    for layer, op in changes.items():
        ops[int(layer[1:])] = op
    return ",".join(ops)


#: Validation networks that share most of their entries, so that a job of them stays small (20 entries):
#: their LUT sums need every entry of theirs, which the job then measures.
JOB_NETS = [_variant(), _variant(l2="k3_e3"), _variant(l6="k5_e1"), _variant(l10="k3_e6")]
#: Networks added later to the finished job: their entries are those of JOB_NETS.
MORE_NETS = [_variant(l3="k3_e3"), _variant(l7="k5_e1", l11="k3_e6")]


def _batches(agent: AgentProcess) -> list[list[str]]:
    """The keys an agent measured, batch by batch (``claimed`` lines start a batch)."""
    out: list[list[str]] = []
    for line in agent.text().splitlines():
        if line.startswith("claimed "):
            out.append([])
        elif line.startswith("measured ") and out:
            out[-1] += [p.removeprefix("key=") for p in line.split() if p.startswith("key=")]
    return out


def test_agent_measures_validation_networks_and_the_server_computes_the_accuracy(server, tmp_path, agents) -> None:
    """32x32 on onnxruntime, end to end: a job with 4 validation networks; then `hwlut validate --device` adds 2."""
    from typer.testing import CliRunner

    from hwlut.cli import app

    url, admin = server
    token = register(url, admin)
    space = fbnet_space(32)
    job = create_job(url, token, FAST, keys=[KEYS[0]], validation={"n": 0, "archs": JOB_NETS})
    needed = {e.key for a in JOB_NETS for e in space.entries_of(a)} | {KEYS[0]}
    assert job["progress"]["total"] == len(needed) and job["validation"]["total"] == len(JOB_NETS)
    agent = AgentProcess(tmp_path, url, token, "--once", "--batch", "8")
    agents.append(agent)
    assert agent.wait() == 0, agent.text()
    nets = {network_item_key(a) for a in JOB_NETS}
    assert sorted(agent.measured()) == sorted(needed | nets)
    # Networks are spread among the entries: a batch that measured one measured entries beside it.
    batches = _batches(agent)
    with_nets = [b for b in batches if nets & set(b)]
    assert len(with_nets) >= 2 and all(set(b) - nets for b in with_nets), batches

    with HwlutClient(url, token=token) as client:
        state = client.job(job["id"])
        acc = client.accuracy("box", lut=job["id"])
        lut = client.lut("box", job["id"])
        estimate = client.architecture_latency("box", JOB_NETS[1], lut=job["id"])
    assert state["status"] == "complete" and state["validation"]["done"] == len(JOB_NETS)
    rep = acc["report"]
    assert acc["source"] == "job" and acc["lut"] == job["id"] and [r["arch"] for r in rep["rows"]] == JOB_NETS
    for row in rep["rows"]:
        assert row["measured_us"] > 0 and row["raw_us"] == pytest.approx(lut.network_latency(row["arch"]))
        assert 0.3 < row["raw_us"] / row["measured_us"] < 3.0 and row["entries"] == 26
    assert rep["raw"]["n"] == 4 and rep["overhead"]["n"] == 4
    assert rep["overhead_per_invocation_us"] == pytest.approx(lut.overhead_us)
    # 4 networks: too few to cross-validate a calibration; the raw sum is served and the report says why
    assert rep["chosen"] == "none" and rep["calibration"] is None and "too few" in rep["choice"]["reason"]
    assert rep["calibrated"] == rep["raw"] and rep["intervals"]["raw"]["within_10"]["n"] == 4
    assert [n["arch"] for n in acc["networks"]] == JOB_NETS
    assert all(n["artifact"].startswith("net-") and n["stats"]["count"] >= 1 for n in acc["networks"])
    assert acc["runtime"]["runtime"] == "ort" and acc["lut_cache_mode"] == "warm"
    assert estimate["lut"] == job["id"] and estimate["accuracy"]["networks"] == 4
    assert estimate["calibrated_us"] is None  # no calibration served: the raw sum is the prediction
    assert lut.provenance["accuracy"]["networks"] == 4 and "calibration" not in lut.provenance

    # `hwlut validate --device`: adds networks to the finished job, waits for an agent, prints the server's report.
    out, log = tmp_path / "validate.json", tmp_path / "validate.log"
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "validate", "--server", url, "--device", "box"]
    cmd += ["--job", str(job["id"]), "--token", token, "--n", "0", "--json", "--timeout", "120"]
    cmd += ["--plot", str(tmp_path / "acc.png"), *(x for a in MORE_NETS for x in ("--arch", a))]
    with open(out, "wb") as stdout, open(log, "wb") as stderr:
        validating = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=dict(os.environ))
    try:
        poll(lambda: _job(url, token, job["id"])["validation"]["total"] == 6, "hwlut validate adding the networks")
        with HwlutClient(url, token=token) as client:  # added, not measured: the job stays as it was
            now = client.job(job["id"])
            assert (now["status"], now["completed_at"], now["progress"]) == (
                "complete",
                state["completed_at"],
                state["progress"],
            )
            assert client.lut_and_id("box", job["id"])[0] == job["id"]
        second = AgentProcess(tmp_path, url, token, "--once", "--batch", "8")
        agents.append(second)
        assert second.wait() == 0, second.text()
        assert sorted(second.measured()) == sorted(network_item_key(a) for a in MORE_NETS)
        assert validating.wait(timeout=120) == 0, log.read_text()
    finally:
        if validating.poll() is None:
            validating.kill()
            validating.wait()
    doc = json.loads(out.read_text())
    assert doc["source"] == "job" and doc["lut"] == f"{url} box LUT {job['id']}"
    assert [r["arch"] for r in doc["report"]["rows"]] == JOB_NETS + MORE_NETS and doc["report"]["networks"] == 6
    assert "an agent of device 'box' must be running" in log.read_text()
    assert (tmp_path / "acc.png").read_bytes()[:4] == b"\x89PNG"
    shown = CliRunner().invoke(
        app, ["lut", "show", "--device", "box", "--server", url, "--job", str(job["id"])], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    assert "accuracy  6 validation networks" in shown.stdout and "calibrated, out of fold" in shown.stdout
    assert "calibration chosen by 6-fold cross-validation" in shown.stdout and "verdict   " in shown.stdout


def _job(url: str, token: str, job_id: int) -> dict:
    with HwlutClient(url, token=token) as client:
        return client.job(job_id)


def test_cli_register_list_create_status(server) -> None:
    from typer.testing import CliRunner

    from hwlut.cli import app
    from lutclient import Invalid

    url, admin = server
    runner = CliRunner()
    env = {"HWLUT_ADMIN_TOKEN": admin, "HWLUT_SERVER": url, "HWLUT_TOKEN": ""}
    done = runner.invoke(app, ["device", "register", "cli-box", "--description", "a test box"], env=env)
    assert done.exit_code == 0, done.output
    token = done.output.strip().splitlines()[-1]
    assert token.startswith("hwlut_")
    assert runner.invoke(app, ["device", "add", "cli-box"], env=env).exit_code == 2  # the alias; the name is taken
    listed = runner.invoke(app, ["device", "list", "--json"], env=env)
    assert json.loads(listed.output.splitlines()[0])["name"] == "cli-box"
    created = runner.invoke(
        app,
        [*"job create --json --device cli-box -r 32 --runtime ort --threads 1 --entry".split(), KEYS[0]],
        env={**env, "HWLUT_TOKEN": token},
    )
    assert created.exit_code == 0, created.output
    job = json.loads(created.output)
    assert job["threads"] == 1 and job["runtime"] == "ort" and job["progress"]["total"] == 1
    status = runner.invoke(app, ["job", "status", str(job["id"])], env=env)
    assert status.exit_code == 0 and "0/1 done (0%)" in status.output and "1 pending" in status.output
    validated = runner.invoke(
        app,
        [*"job create --json --device cli-box -r 32 --validate 2 --validate-seed 3 --arch".split(), ARCH],
        env={**env, "HWLUT_TOKEN": token},
    )
    assert validated.exit_code == 0, validated.output
    job = json.loads(validated.output)
    assert job["validation"]["total"] == 3 and job["options"]["validation"][0]["seed"] == 3
    status = runner.invoke(app, ["job", "status", str(job["id"])], env=env)
    assert "validation networks 0/3 done" in status.output and "3 pending" in status.output
    with HwlutClient(url, token=token) as client, pytest.raises(Invalid) as bad:
        client.create_job("cli-box", resolution=32, entries=["tbs_h224_w224_cin3_cout16_s1_k3_e1_g1"])
    assert bad.value.problems[0]["loc"] == ["body", "entries", 0]


def test_earlier_uploads_are_compared_on_the_checked_fields_less_what_identical_devices_differ_in() -> None:
    from profiler.agent.config import earlier_mismatches

    phone = {"model": "Pixel 7", "serial": "A1"}
    earlier = {
        "runtime": {"runtime": "adb", "threads": 1, "phone": phone},
        "exporter": {"format": "tflite", "versions": {"torch": "2.13.0"}},
        "host": {"cpu_model": "laptop", "machine": "x86_64"},
    }
    other_unit = {**earlier, "runtime": {**earlier["runtime"], "phone": {**phone, "serial": "B2"}}}
    other_unit["host"] = {"cpu_model": "another laptop driving the phone", "machine": "arm64"}
    assert earlier_mismatches(earlier, other_unit) == []
    other_model = {**other_unit, "runtime": {**other_unit["runtime"], "phone": {"model": "Pixel 8", "serial": "C3"}}}
    assert earlier_mismatches(earlier, other_model) == ["runtime.phone.model: 'Pixel 7' != 'Pixel 8'"]
    # on this machine's CPU the host is what measures: it is compared
    ort = {**earlier, "runtime": {"runtime": "ort", "threads": 1}}
    moved = {**ort, "host": {"cpu_model": "another CPU", "machine": "x86_64"}}
    assert earlier_mismatches(ort, moved) == ["host.cpu_model: 'laptop' != 'another CPU'"]
    assert earlier_mismatches(ort, {**ort, "runtime": {"runtime": "ort", "threads": 2}}) == ["runtime.threads: 1 != 2"]
