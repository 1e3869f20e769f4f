"""Validation networks as work items of a profiling job: the store (SQLite and PostgreSQL) and the HTTP API.

Networks are measured here with made-up latencies (``1.2 x`` the LUT sum
``+ 40 µs``, so the calibration a report fits is known exactly); the real
agent measuring them end to end is in ``tests/test_agent.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from lut_store import Store, Table, crud
from lut_store.models import Job, LutEntry, NetworkMeasurement, WorkItem
from searchspace import LatencyTable, fbnet_space, network_item_key, plan_networks
from server import Settings, create_app

SPACE = fbnet_space(32)
ENTRIES = len(SPACE.distinct_entries())
NAMED = ",".join(["k3_e1"] * len(SPACE.layers))
ADMIN = "admin-secret-token"
SLOPE, INTERCEPT = 1.2, 40.0


def entry_latency(key: str) -> float:
    """A made-up, stable latency per entry key (µs)."""
    return 10.0 + int(hashlib.sha1(key.encode()).hexdigest()[:4], 16) % 50


def network_latency(arch: str) -> float:
    """What a made-up whole network takes: SLOPE x its LUT sum + INTERCEPT."""
    return SLOPE * sum(entry_latency(e.key) for e in SPACE.entries_of(arch)) + INTERCEPT


def result_of(item: Any) -> dict[str, Any]:
    """An upload record for a claimed item (a store row or an API item)."""
    kind = item.kind if hasattr(item, "kind") else item["kind"]
    fields = item.fields if hasattr(item, "fields") else item["fields"]
    item_id = item.id if hasattr(item, "id") else item["item_id"]
    key = item.key if hasattr(item, "key") else item["key"]
    median = network_latency(fields["arch"]) if kind == "network" else entry_latency(key)
    return {"item_id": item_id, "stats": {"median": median, "count": 5}}


def make_device(store: Store, name: str = "dev") -> None:
    with store.transaction(write=True) as session:
        crud.create_device(session=session, name=name)


def new_job(store: Store, device: str = "dev", **kw: Any) -> int:
    with store.transaction(write=True) as session:
        dev = crud.get_device(session=session, name=device)
        return crud.create_job(session=session, device=dev, spec=SPACE, settings={"runtime": "ort"}, **kw).id


def measure(store: Store, job_id: int, *, kinds: tuple[str, ...] = ("entry", "network"), overhead: float = 2.0) -> int:
    """Claim everything claimable and upload results for the items of ``kinds`` (the rest handed back)."""
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lease = crud.claim_items(session=session, job=job, agent="t", max_items=10_000)
        mine = [i for i in lease.items if i.kind in kinds]
        rest = [i.id for i in lease.items if i.kind not in kinds]
        if rest:
            crud.release_items(session=session, job=job, lease_id=lease.lease_id, item_ids=rest)
        results = [result_of(i) for i in mine]
        if results:
            crud.upload_results(
                session=session, job=job, lease_id=lease.lease_id, results=results, overhead_us=overhead
            )
        return len(results)


def counts(store: Store) -> tuple[int, ...]:
    with store.transaction() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(t)) for t in (Job, WorkItem, LutEntry, NetworkMeasurement)
        )


# -- the store ------------------------------------------------------------------------------------------
def test_validation_networks_are_work_items_spread_among_the_entries(store: Store) -> None:
    make_device(store)
    job_id = new_job(store, validation={"n": 6, "seed": 3, "archs": [NAMED]})
    expected = plan_networks(SPACE, 6, 3, [NAMED])
    with store.transaction() as session:
        items = list(session.scalars(select(WorkItem).where(WorkItem.job_id == job_id).order_by(WorkItem.id)))
        job = crud.get_job(session=session, job_id=job_id)
        assert crud.job_progress(session=session, job=job)["total"] == ENTRIES
        assert crud.validation_progress(session=session, job=job) == {
            "pending": 7,
            "leased": 0,
            "done": 0,
            "failed": 0,
            "total": 7,
        }
        plan = {"n": 6, "seed": 3, "draw": "stratified", "archs": [NAMED], "networks": 7}
        assert job.options["validation"] == [plan]
    networks = [i for i in items if i.kind == "network"]
    assert [i.fields["arch"] for i in networks] == expected
    assert [i.fields["index"] for i in networks] == list(range(7)) and {i.fields["seed"] for i in networks} == {3}
    assert [i.fields["named"] for i in networks] == [True] + [False] * 6
    assert all(i.key == network_item_key(i.fields["arch"]) and len(i.key) <= 255 for i in networks)
    # Spread evenly in id order: network j comes after (j + 1) * E / (N + 1) entries.
    before = [sum(1 for x in items[: items.index(i)] if x.kind == "entry") for i in networks]
    assert before == [(j + 1) * ENTRIES // 8 for j in range(7)]
    # so a batch of 32 claimed in id order holds entries and networks alike
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lease = crud.claim_items(session=session, job=job, agent="a", max_items=32)
        assert {i.kind for i in lease.items} == {"entry", "network"}


def test_a_jobs_networks_are_stratified_over_the_proxy_range_unless_uniform_is_asked(store: Store) -> None:
    """The default draw spans the space's latency range (MAC proxy) far wider than a uniform draw does; the
    agent draws the job's networks again from the stored plan (an old plan without a draw was uniform)."""
    from profiler.agent.config import unmeasured_networks
    from searchspace.costs import proxy_medians
    from searchspace.validation import lut_sum_range, validation_archs

    make_device(store)
    stratified = new_job(store, validation={"n": 10, "seed": 2})
    uniform = new_job(store, validation={"n": 10, "seed": 2, "draw": "uniform"})
    medians = proxy_medians(SPACE)
    lo, hi = lut_sum_range(SPACE, medians)

    def span(archs: list[str]) -> float:
        sums = [sum(medians[e.key] for e in SPACE.entries_of(a)) for a in archs]
        return (max(sums) - min(sums)) / (hi - lo)

    drawn = {}
    with store.transaction() as session:
        for job_id in (stratified, uniform):
            job = crud.get_job(session=session, job_id=job_id)
            rows = session.scalars(select(WorkItem).where(WorkItem.job_id == job_id, WorkItem.kind == "network"))
            drawn[job_id] = [i.fields["arch"] for i in sorted(rows, key=lambda i: i.fields["index"])]
            public = {"validation": crud.validation_progress(session=session, job=job), "options": job.options}
            assert unmeasured_networks(public, SPACE) == drawn[job_id]  # the agent exports the very same
    assert drawn[uniform] == validation_archs(SPACE, 10, 2)
    assert drawn[stratified] == plan_networks(SPACE, 10, 2) != drawn[uniform]
    assert span(drawn[stratified]) > 0.8 and span(drawn[stratified]) > 2 * span(drawn[uniform])
    legacy = {"validation": {"pending": 10, "total": 10}, "options": {"validation": [{"n": 10, "seed": 2}]}}
    assert unmeasured_networks(legacy, SPACE) == drawn[uniform]
    with pytest.raises(crud.Invalid, match="stratified, uniform") as bad:
        new_job(store, validation={"n": 3, "draw": "sorted"})
    assert bad.value.field == "validation.draw"


def test_a_restricted_job_measures_the_entries_its_networks_need(store: Store) -> None:
    make_device(store)
    first = SPACE.distinct_entries()[0].key
    job_id = new_job(store, entries=[first], validation={"n": 2, "seed": 1})
    needed = {e.key for a in plan_networks(SPACE, 2, 1) for e in SPACE.entries_of(a)}
    with store.transaction() as session:
        job = crud.get_job(session=session, job_id=job_id)
        keys = set(session.scalars(select(WorkItem.key).where(WorkItem.job_id == job_id, WorkItem.kind == "entry")))
        assert keys == needed | {first} and set(job.options["entries"]) == keys


BAD_VALIDATION = [
    ({"n": -1}, "validation.n"),
    ({"n": 1001}, "validation.n"),
    ({"n": True}, "validation.n"),
    ({"seed": -1}, "validation.seed"),
    ({"seed": "x"}, "validation.seed"),
    ({"archs": ["k3_e1"]}, "validation.archs[0]"),
    ({"archs": [NAMED, NAMED.replace("k3_e1", "k9_e9", 1)]}, "validation.archs[1]"),
    ({"archs": [",".join(["k3_e1", "k3_e2"] + ["k3_e1"] * 20)]}, "validation.archs[0]"),  # no such candidate
    ({"archs": "k3_e1"}, "validation.archs"),
    ({"colour": 1}, "validation.colour"),
]


@pytest.mark.parametrize(("validation", "field"), BAD_VALIDATION)
def test_bad_validation_fields_are_named_and_nothing_is_written(
    store: Store, validation: dict[str, Any], field: str
) -> None:
    make_device(store)
    before = counts(store)
    with pytest.raises(crud.Invalid) as caught, store.transaction(write=True) as session:
        dev = crud.get_device(session=session, name="dev")
        crud.create_job(session=session, device=dev, spec=SPACE, settings={"runtime": "ort"}, validation=validation)
    assert caught.value.field == field
    assert counts(store) == before


def test_status_and_latest_depend_on_the_entries_only(store: Store) -> None:
    make_device(store)
    job_a = new_job(store, validation={"n": 4, "seed": 0})
    assert measure(store, job_a, kinds=("entry",)) == ENTRIES
    with store.transaction() as session:
        a = crud.get_job(session=session, job_id=job_a)
        assert a.status == "complete" and a.accuracy is None
        assert crud.validation_progress(session=session, job=a)["pending"] == 4
        completed_a = a.completed_at
        assert crud.resolve_lut(session=session, device="dev", ref="latest").id == job_a
        assert crud.lut_snapshot(session=session, job=a).complete
    job_b = new_job(store)
    measure(store, job_b)
    with store.transaction() as session:
        assert crud.resolve_lut(session=session, device="dev", ref="latest").id == job_b
    # A's networks measured later: A stays complete, its completion time and `latest` do not move.
    assert measure(store, job_a) == 4
    with store.transaction() as session:
        a = crud.get_job(session=session, job_id=job_a)
        assert a.status == "complete" and a.completed_at == completed_a and a.accuracy is not None
        assert crud.resolve_lut(session=session, device="dev", ref="latest").id == job_b
    # Networks added to the finished B: still complete, still `latest`; a claim hands out only the networks.
    with store.transaction(write=True) as session:
        b = crud.get_job(session=session, job_id=job_b)
        completed_b = b.completed_at
        archs, added = crud.add_validation(session=session, job=b, n=3, seed=5)
        assert added == 3 and archs == plan_networks(SPACE, 3, 5)
        assert b.status == "complete" and b.completed_at == completed_b
    with store.transaction(write=True) as session:
        b = crud.get_job(session=session, job_id=job_b)
        assert crud.resolve_lut(session=session, device="dev", ref="latest").id == job_b
        lease = crud.claim_items(session=session, job=b, agent="x", max_items=100)
        assert [i.kind for i in lease.items] == ["network"] * 3
        assert b.status == "complete" and b.completed_at == completed_b
        crud.release_items(session=session, job=b, lease_id=lease.lease_id)
    # A failed job hands out nothing, networks or not.
    with store.transaction(write=True) as session:
        b = crud.get_job(session=session, job_id=job_b)
        b.status = "failed"
        assert crud.claim_items(session=session, job=b, agent="x", max_items=100).items == []
        session.rollback()


def test_network_results_are_stored_apart_and_the_report_is_computed_when_all_are_done(store: Store) -> None:
    make_device(store)
    job_id = new_job(store, validation={"n": 9, "seed": 2, "archs": [NAMED]}, max_attempts=1)
    archs = plan_networks(SPACE, 9, 2, [NAMED])
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        lease = crud.claim_items(session=session, job=job, agent="t", max_items=10_000)
        nets = [i for i in lease.items if i.kind == "network"]
        entries = [i for i in lease.items if i.kind == "entry"]
        # everything but the last two networks: no report yet (one is still leased)
        crud.upload_results(
            session=session,
            job=job,
            lease_id=lease.lease_id,
            results=[result_of(i) for i in entries + nets[:-2]],
            overhead_us=2.0,
        )
        assert job.status == "complete" and job.accuracy is None
        rows = session.scalars(select(NetworkMeasurement).where(NetworkMeasurement.job_id == job_id)).all()
        assert len(rows) == 8 and all(r.stats["source"] == "job" for r in rows)
        by_arch = {r.arch: r for r in rows}
        assert by_arch[NAMED].latency_us == pytest.approx(network_latency(NAMED))
        assert by_arch[NAMED].stats["item_id"] == nets[0].id and by_arch[NAMED].stats["named"] is True
        assert session.scalar(select(func.count()).select_from(LutEntry)) == ENTRIES  # no LUT entry for a network
        # one network fails for good (max_attempts 1), the other is measured: now the report exists
        crud.report_failure(session=session, job=job, lease_id=lease.lease_id, item_id=nets[-2].id, error="boom")
        assert job.accuracy is None
        crud.upload_results(session=session, job=job, lease_id=lease.lease_id, results=[result_of(nets[-1])])
        doc = crud.get_accuracy(session=session, job=job)
    report = doc["report"]
    kept = [a for a in archs if a != nets[-2].fields["arch"]]
    assert doc["source"] == "job" and doc["lut"] == job_id and report["meta"]["source"] == "job"
    assert [r["arch"] for r in report["rows"]] == kept and report["networks"] == 9
    assert doc["plan"] == {"seed": 2, "n": 8, "named": [NAMED]}
    assert [n["arch"] for n in doc["networks"]] == kept
    for row in report["rows"]:
        assert row["measured_us"] == pytest.approx(network_latency(row["arch"]))
        assert row["raw_us"] == pytest.approx(sum(entry_latency(e.key) for e in SPACE.entries_of(row["arch"])))
        assert row["entries"] == 26 and row["overhead_us"] == pytest.approx(row["raw_us"] - 25 * 2.0)
    # Cross-validation chose the calibration; every network's calibrated prediction is out of fold.
    cal = report["calibration"]
    assert cal["slope"] == pytest.approx(SLOPE) and cal["intercept_us"] == pytest.approx(INTERCEPT)
    assert report["chosen"] == "linear" and report["selection"]["seed"] == 2
    assert report["calibrated"]["n"] == 9 == report["held_out"] and report["calibrated"]["within_5"] == 1.0
    for row in report["rows"]:
        assert row["role"] == "out_of_fold" and row["calibrated_us"] is not None
    assert report["raw"]["n"] == 9 and report["raw"]["within_10"] == 0.0 and report["raw"]["spearman"] > 0.9
    # The LUT the server hands out carries it, as a validation written into the file would.
    with store.transaction() as session:
        table = crud.snapshot_table(
            crud.lut_snapshot(session=session, job=crud.get_job(session=session, job_id=job_id))
        )
    assert table.provenance["calibration"]["slope"] == pytest.approx(SLOPE)
    assert table.provenance["accuracy"]["calibrated"]["n"] == 9 and table.provenance["accuracy"]["intervals"]


def test_an_uploaded_report_replaces_the_computed_one_but_keeps_the_measured_networks(store: Store) -> None:
    make_device(store)
    job_id = new_job(store, validation={"n": 4, "seed": 1})
    measure(store, job_id)
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        computed = crud.get_accuracy(session=session, job=job)
        uploaded = {**computed, "report": {**computed["report"], "rows": computed["report"]["rows"][:2]}}
        uploaded["report"]["networks"] = 2
        for key in ("lut", "uploaded_at", "source"):
            uploaded.pop(key)
        stored = crud.set_accuracy(session=session, job=job, document=uploaded)
        assert stored["source"] == "upload" and len(stored["report"]["rows"]) == 2
        of_job = [
            m
            for m in session.scalars(select(NetworkMeasurement).where(NetworkMeasurement.job_id == job_id))
            if m.stats.get("source") == "job"
        ]
        assert len(of_job) == 4
        # Asking again for networks the job has measured: nothing is added, the computed report comes back.
        archs, added = crud.add_validation(session=session, job=job, n=4, seed=1)
        assert added == 0 and archs == plan_networks(SPACE, 4, 1)
        again = crud.get_accuracy(session=session, job=job)
        assert again["source"] == "job" and [r["arch"] for r in again["report"]["rows"]] == archs


def test_add_validation_refusals_name_the_field_and_write_nothing(store: Store) -> None:
    make_device(store)
    first = SPACE.distinct_entries()[0].key
    restricted = new_job(store, entries=[first])
    full = new_job(store)
    with store.transaction(write=True) as session:
        dev = crud.get_device(session=session, name="dev")
        imported = crud.import_table(session=session, device=dev, table=Table("hwlut", [], space=SPACE)).id
    cases: list[tuple[int, dict[str, Any], type, str]] = [
        (imported, {"n": 2}, crud.Conflict, "lut"),
        (restricted, {"n": 2}, crud.Conflict, "n"),
        (restricted, {"n": 0, "archs": [NAMED]}, crud.Conflict, "archs[0]"),
        (full, {"n": 0, "archs": [NAMED, "k3_e1"]}, crud.Invalid, "archs[1]"),
        (full, {"n": 0}, crud.Invalid, "n"),
        (full, {"n": 2000}, crud.Invalid, "n"),
        (full, {"n": 1, "seed": -3}, crud.Invalid, "seed"),
    ]
    before = counts(store)
    for job_id, kwargs, error, field in cases:
        with pytest.raises(error) as caught, store.transaction(write=True) as session:
            crud.add_validation(session=session, job=crud.get_job(session=session, job_id=job_id), **kwargs)
        assert caught.value.field == field, (job_id, kwargs)
    assert counts(store) == before


def test_an_expired_network_lease_is_claimed_again(store: Store) -> None:
    make_device(store)
    job_id = new_job(store)
    measure(store, job_id)
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        crud.add_validation(session=session, job=job, n=2, seed=0)
    t0 = crud.utcnow()
    with store.transaction(write=True) as session:
        job = crud.get_job(session=session, job_id=job_id)
        first = crud.claim_items(session=session, job=job, agent="a", max_items=5, lease_seconds=10, now=t0)
        assert len(first.items) == 2
    with store.transaction(write=True) as session:  # one transaction per request, as the server does
        job = crud.get_job(session=session, job_id=job_id)
        again = crud.claim_items(session=session, job=job, agent="b", max_items=5, now=t0 + timedelta(seconds=11))
        assert {i.id for i in again.items} == {i.id for i in first.items}
        crud.upload_results(
            session=session, job=job, lease_id=again.lease_id, results=[result_of(i) for i in again.items]
        )
        assert crud.get_accuracy(session=session, job=job)["report"]["networks"] == 2


# -- the HTTP API -------------------------------------------------------------------------------------------
def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(admin_token=ADMIN), store=store)) as c:
        yield c


def add_device(c: TestClient, name: str) -> str:
    r = c.post("/v1/devices", json={"name": name}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    return r.json()["token"]


def measure_over_http(c: TestClient, job_id: int, token: str) -> dict[str, Any]:
    lease = c.post(f"/v1/jobs/{job_id}/claim", json={"agent": "t", "max_items": 1000}, headers=bearer(token)).json()
    r = c.post(
        f"/v1/jobs/{job_id}/results",
        json={"lease_id": lease["lease_id"], "results": [result_of(i) for i in lease["items"]], "overhead_us": 2.0},
        headers=bearer(token),
    )
    assert r.status_code == 200, r.text
    return lease


def fingerprint(store: Store) -> str:
    digest = hashlib.sha256()
    with store.transaction() as session:
        for table in ("jobs", "work_items", "lut_entries", "network_measurements"):
            rows = session.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
            digest.update(repr([tuple(map(str, r)) for r in rows]).encode())
    return digest.hexdigest()


def test_a_job_with_validation_networks_over_http(client: TestClient) -> None:
    token = add_device(client, "box")
    body = {"resolution": 32, "validation": {"n": 5, "seed": 4, "archs": [NAMED]}}
    r = client.post("/v1/devices/box/jobs", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["progress"]["total"] == ENTRIES and job["validation"]["total"] == 6
    assert job["options"]["validation"][0]["seed"] == 4
    lease = measure_over_http(client, job["id"], token)
    networks = [i for i in lease["items"] if i["kind"] == "network"]
    assert [i["fields"]["arch"] for i in networks] == plan_networks(SPACE, 5, 4, [NAMED])
    assert all(i["key"].startswith("net:") for i in networks)
    shown = client.get(f"/v1/jobs/{job['id']}").json()
    assert shown["status"] == "complete" and shown["validation"]["done"] == 6

    acc = client.get("/v1/devices/box/luts/latest/accuracy").json()
    assert acc["source"] == "job" and acc["lut"] == job["id"] and len(acc["report"]["rows"]) == 6
    latency = client.post("/v1/devices/box/luts/latest/latency", json={"arch": NAMED}).json()
    assert latency["calibrated_us"] == pytest.approx(network_latency(NAMED))
    assert latency["accuracy"]["calibrated"]["within_5"] == 1.0 and latency["accuracy"]["networks"] == 6
    served = LatencyTable.from_dict(client.get("/v1/devices/box/luts/latest").json())
    assert served.provenance["calibration"]["slope"] == pytest.approx(SLOPE)

    # More networks for the finished job: added as items, the job and `latest` stay as they were.
    # (uniform: a stratified draw of another seed may share the range's extreme networks with the first)
    more = {"n": 3, "seed": 8, "draw": "uniform"}
    r = client.post("/v1/devices/box/luts/latest/validation", json=more, headers=bearer(token))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["lut"] == job["id"] and plan["added"] == 3 and plan["job_status"] == "complete"
    assert plan["archs"] == plan_networks(SPACE, 3, 8, draw="uniform") and plan["validation"]["pending"] == 3
    again = client.get(f"/v1/jobs/{job['id']}").json()
    assert again["status"] == "complete" and again["completed_at"] == shown["completed_at"]
    assert again["progress"] == shown["progress"] and again["validation"]["total"] == 9
    assert client.get("/v1/devices/box/luts/latest", headers={}).headers["X-Hwlut-Lut"] == str(job["id"])
    # Until they are measured the earlier report stands; then the server computes the new one.
    assert client.get("/v1/devices/box/luts/latest/accuracy").json()["report"]["networks"] == 6
    measure_over_http(client, job["id"], token)
    assert client.get("/v1/devices/box/luts/latest/accuracy").json()["report"]["networks"] == 9
    # The same plan again adds nothing.
    r = client.post(f"/v1/devices/box/luts/{job['id']}/validation", json=more, headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["added"] == 0


BAD_HTTP: list[tuple[str, Any, int, list[Any]]] = [
    ("jobs", {"resolution": 32, "validation": {"n": -1}}, 422, ["body", "validation", "n"]),
    ("jobs", {"resolution": 32, "validation": {"n": 1001}}, 422, ["body", "validation", "n"]),
    ("jobs", {"resolution": 32, "validation": {"seed": -1}}, 422, ["body", "validation", "seed"]),
    ("jobs", {"resolution": 32, "validation": {"archs": ["k3_e1"]}}, 422, ["body", "validation", "archs", 0]),
    ("jobs", {"resolution": 32, "validation": {"archs": [NAMED, "x"]}}, 422, ["body", "validation", "archs", 1]),
    ("jobs", {"resolution": 32, "validation": {"networks": 3}}, 422, ["body", "validation", "networks"]),
    ("validation", {"n": 1001}, 422, ["body", "n"]),
    ("validation", {"n": 0}, 422, ["body", "n"]),
    ("validation", {"n": 0, "archs": ["k3_e1,k3_e1"]}, 422, ["body", "archs", 0]),
    ("validation", {"seed": "zero"}, 422, ["body", "seed"]),
    ("validation", {"n": 2, "draw": "sorted"}, 422, ["body", "draw"]),
    ("validation", {"n": 2, "extra": 1}, 422, ["body", "extra"]),
    ("restricted", {"n": 2}, 409, ["body", "n"]),
    ("restricted", {"n": 0, "archs": [NAMED]}, 409, ["body", "archs", 0]),
    ("imported", {"n": 2}, 409, ["path", "lut"]),
    ("missing", {"n": 2}, 404, ["path", "lut"]),
]


@pytest.mark.parametrize(("target", "body", "status", "loc"), BAD_HTTP, ids=[f"{b[0]}-{b[3]}" for b in BAD_HTTP])
def test_bad_validation_requests_are_4xx_naming_the_field_and_write_nothing(
    client: TestClient, store: Store, target: str, body: Any, status: int, loc: list[Any]
) -> None:
    token = add_device(client, "box")
    done = client.post("/v1/devices/box/jobs", json={"resolution": 32}, headers=bearer(token)).json()["id"]
    measure_over_http(client, done, token)
    first = SPACE.distinct_entries()[0].key
    restricted = client.post(
        "/v1/devices/box/jobs", json={"resolution": 32, "entries": [first]}, headers=bearer(token)
    ).json()["id"]
    table = LatencyTable(space=SPACE, entries={e.key: {"median": 1.0} for e in SPACE.distinct_entries()})
    r = client.post("/v1/devices/box/luts", json={"content": json.dumps(table.to_dict())}, headers=bearer(ADMIN))
    imported = r.json()["id"]
    path = {
        "jobs": "/v1/devices/box/jobs",
        "validation": f"/v1/devices/box/luts/{done}/validation",
        "restricted": f"/v1/devices/box/luts/{restricted}/validation",
        "imported": f"/v1/devices/box/luts/{imported}/validation",
        "missing": "/v1/devices/box/luts/99999/validation",
    }[target]
    before = fingerprint(store)
    r = client.post(path, json=body, headers=bearer(token))
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["loc"][: len(loc)] == loc, r.json()
    assert fingerprint(store) == before


def test_the_validation_route_needs_the_devices_token(client: TestClient, store: Store) -> None:
    token = add_device(client, "box")
    other = add_device(client, "other")
    job_id = client.post("/v1/devices/box/jobs", json={"resolution": 32}, headers=bearer(token)).json()["id"]
    before = fingerprint(store)
    path = f"/v1/devices/box/luts/{job_id}/validation"
    assert client.post(path, json={"n": 2}).status_code == 401
    r = client.post(path, json={"n": 2}, headers=bearer(other))
    assert r.status_code == 403 and r.json()["detail"][0]["loc"] == ["header", "authorization"]
    assert fingerprint(store) == before
    assert client.post(path, json={"n": 2}, headers=bearer(ADMIN)).json()["added"] == 2


def test_the_servers_cache_serves_the_computed_report_at_once(store: Store) -> None:
    with TestClient(create_app(Settings(admin_token=ADMIN, lut_cache_ttl_s=3600), store=store)) as c:
        token = add_device(c, "box")
        body = {"resolution": 32, "validation": {"n": 6, "seed": 0}}
        job_id = c.post("/v1/devices/box/jobs", json=body, headers=bearer(token)).json()["id"]
        lease = c.post(f"/v1/jobs/{job_id}/claim", json={"agent": "t", "max_items": 1000}, headers=bearer(token))
        items = lease.json()["items"]
        upload = {"lease_id": lease.json()["lease_id"], "overhead_us": 2.0}
        entries = [result_of(i) for i in items if i["kind"] == "entry"]
        r = c.post(f"/v1/jobs/{job_id}/results", json={**upload, "results": entries}, headers=bearer(token))
        assert r.json()["job_status"] == "complete"
        before = c.post("/v1/devices/box/luts/latest/latency", json={"arch": NAMED}).json()  # cached now
        assert before["lut"] == job_id and before["calibrated_us"] is None and before["accuracy"] is None
        networks = [result_of(i) for i in items if i["kind"] == "network"]
        r = c.post(f"/v1/jobs/{job_id}/results", json={**upload, "results": networks}, headers=bearer(token))
        assert r.status_code == 200 and r.json()["job_status"] == "complete"
        after = c.post("/v1/devices/box/luts/latest/latency", json={"arch": NAMED}).json()
        assert after["total_us"] == before["total_us"] and after["accuracy"]["networks"] == 6
        assert after["calibrated_us"] == pytest.approx(network_latency(NAMED))
        doc = c.get("/v1/devices/box/luts/latest").json()
        assert doc["provenance"]["accuracy"]["networks"] == 6 and doc["provenance"]["calibration"]["kind"] == "linear"


def test_two_agents_finishing_at_once_complete_the_job_and_its_report(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last entries and the last network uploaded at once, in two transactions.

    Each upload waits (up to 1 s) for the other at the point where it counts
    the job's items: were both to count before either commits, each would see
    the other's items still leased, and neither would complete the job nor
    compute its report. Uploads of one job take turns (a row lock on
    PostgreSQL, one writer at a time on SQLite), so the second counts what
    the first committed.
    """
    import threading

    make_device(store)
    first = SPACE.distinct_entries()[0].key
    job_id = new_job(store, entries=[first], validation={"n": 0, "archs": [NAMED]})
    leases = []
    for kind in ("entry", "network"):
        with store.transaction(write=True) as session:
            job = crud.get_job(session=session, job_id=job_id)
            lease = crud.claim_items(session=session, job=job, agent=kind, max_items=1000)
            others = [i.id for i in lease.items if i.kind != kind]
            crud.release_items(session=session, job=job, lease_id=lease.lease_id, item_ids=others)
            leases.append((lease.lease_id, [result_of(i) for i in lease.items if i.kind == kind]))

    together = threading.Barrier(2)
    count = crud.leases.refresh_status

    def meeting(**kw: Any) -> None:
        try:
            together.wait(timeout=1.0)
        except threading.BrokenBarrierError:
            pass  # the other upload is waiting for this one to commit
        count(**kw)

    monkeypatch.setattr(crud.leases, "refresh_status", meeting)
    errors: list[BaseException] = []

    def upload(lease_id: str, results: list[dict[str, Any]]) -> None:
        try:
            with store.transaction(write=True) as session:
                job = crud.get_job(session=session, job_id=job_id)
                crud.upload_results(session=session, job=job, lease_id=lease_id, results=results)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=lease) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    with store.transaction() as session:
        job = crud.get_job(session=session, job_id=job_id)
        assert job.status == "complete" and job.accuracy is not None
        assert [r["arch"] for r in crud.get_accuracy(session=session, job=job)["report"]["rows"]] == [NAMED]


def test_validation_archs_live_in_searchspace_and_profiler_re_exports_them() -> None:
    import profiler.validate
    import searchspace.validation

    assert profiler.validate.validation_archs is searchspace.validation.validation_archs
    key = network_item_key(NAMED)
    assert key == network_item_key(SPACE.decode(NAMED)) and key.startswith("net:") and len(key) == 44
    assert network_item_key(NAMED.replace("k3_e1", "k3_e3", 1)) != key
