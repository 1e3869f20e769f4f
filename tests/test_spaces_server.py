"""The ProxylessNAS and OFA spaces as server jobs: work items are their entries (no zero), sums skip zero."""

from __future__ import annotations

import math
import random

import pytest
from fastapi.testclient import TestClient
from test_server import add_device, bearer, client  # noqa: F401 - client is a fixture

from searchspace import load_space


@pytest.mark.parametrize("space_name", ["proxylessnas-mobile", "ofa-mbv3"])
def test_a_job_of_the_space_measures_its_entries_and_prices_zero_at_nothing(
    client: TestClient,  # noqa: F811 - the imported fixture
    space_name: str,
) -> None:
    token = add_device(client, "dev")
    r = client.post("/v1/devices/dev/jobs", json={"space": space_name, "resolution": 32}, headers=bearer(token))
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    lease = client.post(f"/v1/jobs/{job_id}/claim", json={"agent": "t", "max_items": 1000}, headers=bearer(token))
    items = lease.json()["items"]
    space = load_space(space_name, resolution=32)
    assert sorted(i["key"] for i in items) == sorted(e.key for e in space.distinct_entries())
    latency = {i["key"]: 1.0 + n for n, i in enumerate(items)}
    results = [{"item_id": i["item_id"], "stats": {"median": latency[i["key"]], "count": 3}} for i in items]
    body = {"lease_id": lease.json()["lease_id"], "results": results, "provenance": {"runtime": "ort"}}
    r = client.post(f"/v1/jobs/{job_id}/results", json=body, headers=bearer(token))
    assert r.status_code == 200 and r.json()["job_status"] == "complete", r.text
    ops = list(space.sample(random.Random(3)).ops)
    ops[next(la.index for la in space.layers if "zero" in la.candidate_names)] = "zero"
    arch = space.decode(ops)
    est = client.post(f"/v1/devices/dev/luts/{job_id}/latency", json={"arch": arch.encode()}).json()
    assert est["complete"] and len(est["layers"]) == len(space.entries_of(arch))
    assert est["total_us"] == pytest.approx(math.fsum(latency[e.key] for e in space.entries_of(arch)))
