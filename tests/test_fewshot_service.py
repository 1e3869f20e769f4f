"""A few-shot job end to end: real ``hwlut serve`` on 127.0.0.1, a real agent, onnxruntime, FBNet-32.

Three known devices hold complete (constructed) LUTs of FBNet-32; the new
device's job measures only the K entries the server chose; the served LUT
is complete and marks each entry measured or predicted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_agent import FAST, AgentProcess, register
from typer.testing import CliRunner

from hwlut.cli import app
from hwlut.cli.supervisor import local_server
from lutclient import HwlutClient
from searchspace import LatencyTable, fbnet_space
from searchspace.fewshot import entry_features

pytestmark = pytest.mark.slow

SPACE = fbnet_space(32)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    home = tmp_path / "server-home"
    home.mkdir()
    with local_server(home) as (url, admin, _proc):
        yield url, admin


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _known_lut(seed: int) -> str:
    """A complete LUT of FBNet-32: a mix of the entries' structural costs (µs), as file text."""
    entries = SPACE.distinct_entries()
    feats = np.array([entry_features(e) for e in entries]) + 1.0
    mix = np.random.default_rng(seed).uniform(0.2, 1.0, feats.shape[1])
    lat = 5.0 + 50.0 * (feats / feats.mean(axis=0)) @ mix
    table = LatencyTable(space=SPACE, entries={e.key: {"median": float(v)} for e, v in zip(entries, lat, strict=True)})
    table.complete = True
    return json.dumps(table.to_dict())


def _run_agent(tmp_path: Path, url: str, token: str, agents: list[AgentProcess]) -> AgentProcess:
    agent = AgentProcess(tmp_path, url, token, "--once", "--batch", "8")
    agents.append(agent)
    assert agent.wait(timeout=600) == 0, agent.text()  # exports run first: slow on a loaded machine
    return agent


def test_fewshot_job_measures_only_the_chosen_entries_and_serves_a_marked_lut(served, tmp_path, agents) -> None:
    url, admin = served
    with HwlutClient(url, token=admin) as client:
        for n in range(3):
            client.create_device(f"known{n}")
            client.import_lut(f"known{n}", _known_lut(n), format="hwlut")
    token = register(url, admin)
    settings = {"resolution": 32, "runtime": "onnxruntime", "threads": 1, "options": {"protocol": FAST}}
    with HwlutClient(url, token=token) as client:
        job = client.create_job("box", few_shot=4, **settings)
    chosen = job["options"]["entries"]
    assert len(chosen) == 4 and job["progress"]["total"] == 4
    assert job["options"]["fewshot"]["k"] == 4 and len(job["options"]["fewshot"]["basis"]) == 3

    agent = _run_agent(tmp_path, url, token, agents)
    assert sorted(agent.measured()) == sorted(chosen)  # only the chosen items were measured
    with HwlutClient(url, token=token) as client:
        assert client.job(job["id"])["status"] == "complete"
        measured_lut = client.lut("box", job["id"])
        lut_id, lut = client.lut_and_id("box")  # latest: the predicted LUT
    assert lut_id != job["id"] and not lut.missing()
    sources = {key: stats["source"] for key, stats in lut.entries.items()}
    assert sorted(k for k, s in sources.items() if s == "measured") == sorted(chosen)
    for key in chosen:
        assert lut.entries[key]["median"] == pytest.approx(measured_lut.entries[key]["median"])
        assert lut.entries[key]["job"] == job["id"]
    predicted = [stats for stats in lut.entries.values() if stats["source"] == "predicted"]
    assert len(predicted) == len(SPACE.distinct_entries()) - 4
    assert all(stats["std"] >= 0 and stats["median"] >= 0 for stats in predicted)
    assert lut.provenance["method"] == "few-shot from 4 measured entries"
    held_out = lut.provenance["fewshot"]["held_out"]
    assert held_out["n"] == 4 and held_out["mape"] >= 0
    assert lut.provenance["runtime"]["runtime"] == "ort"  # the measurements' own provenance is kept

    # measuring more later (hwlut job few-shot): 2 entries not measured yet; the LUT then marks 6 measured
    args = ["job", "few-shot", "--device", "box", "--k", "2", "--server", url, "-r", "32", "--token", token]
    done = CliRunner().invoke(app, [*args, "--time-cap", str(FAST["time_cap_s"])])
    assert done.exit_code == 0, done.output
    more = json.loads(done.output)
    assert len(more["options"]["entries"]) == 2 and not set(more["options"]["entries"]) & set(chosen)
    _run_agent(tmp_path, url, token, agents)
    with HwlutClient(url, token=token) as client:
        lut = client.lut("box")
    measured = {k for k, stats in lut.entries.items() if stats["source"] == "measured"}
    assert measured == set(chosen) | set(more["options"]["entries"])
    assert lut.provenance["method"] == "few-shot from 6 measured entries"
    _refusals(url, admin)


def _refusals(url: str, admin: str) -> None:
    """Bad few-shot requests: 422 naming the field, nothing written."""
    token = register(url, admin, "other")
    body = {"resolution": 32, "runtime": "onnxruntime", "few_shot": 4}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for change, loc in (
            ({"few_shot": 0}, ["body", "few_shot"]),
            ({"few_shot": 1000}, ["body", "few_shot"]),
            ({"entries": [SPACE.distinct_entries()[0].key]}, ["body", "entries"]),
            ({"few_shot_basis": ["nope"]}, ["body", "few_shot_basis", 0]),
            ({"few_shot_basis": ["other"]}, ["body", "few_shot_basis", 0]),
            ({"resolution": 64}, ["body", "few_shot"]),  # no known device has a LUT of FBNet-64
        ):
            answer = http.post("/v1/devices/other/jobs/few-shot", json={**body, **change})
            assert answer.status_code == 422, (change, answer.text)
            assert answer.json()["detail"][0]["loc"] == loc, (change, answer.json())
        assert http.get("/v1/devices/other/jobs").json() == []  # nothing was written
