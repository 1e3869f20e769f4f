"""The HTTP service through its ASGI app (TestClient) on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from testdata import REFERENCE_LUTS

from lut_store import SchemaBehind, Store
from searchspace import LatencyTable, fbnet_space
from searchspace.fields import STAT_FIELDS
from server import Settings, create_app

ADMIN = "admin-secret-token"
READ = "read-secret-token"
ARCH = ",".join(["k3_e1"] * 22)


def make_client(store: Store, **settings: Any) -> TestClient:
    """A client of a fresh app on ``store``."""
    settings.setdefault("admin_token", ADMIN)
    return TestClient(create_app(Settings(**settings), store=store))


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with make_client(store) as c:
        yield c


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def add_device(c: TestClient, name: str) -> str:
    r = c.post("/v1/devices", json={"name": name, "hardware": {"cpu": "x"}}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    return r.json()["token"]


def run_job(c: TestClient, device: str, token: str, scale: float = 1.0, resolution: int = 32) -> int:
    """Create a job and measure every item with made-up numbers; returns the job id."""
    r = c.post(f"/v1/devices/{device}/jobs", json={"space": "fbnet", "resolution": resolution}, headers=bearer(token))
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    lease = c.post(f"/v1/jobs/{job_id}/claim", json={"agent": "t", "max_items": 1000}, headers=bearer(token)).json()
    results = [
        {"item_id": i["item_id"], "stats": {"median": scale * (1 + n), "count": 5}}
        for n, i in enumerate(lease["items"])
    ]
    r = c.post(
        f"/v1/jobs/{job_id}/results",
        json={"lease_id": lease["lease_id"], "results": results, "provenance": {"runtime": "ort"}},
        headers=bearer(token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["job_status"] == "complete"
    return job_id


def db_fingerprint(store: Store) -> str:
    """A hash of every row of every table: equal before and after means nothing was written."""
    digest = hashlib.sha256()
    with store.transaction() as session:
        for table in ("devices", "device_tokens", "spaces", "jobs", "work_items", "lut_entries"):
            rows = session.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
            digest.update(repr([tuple(map(str, r)) for r in rows]).encode())
    return digest.hexdigest()


# -- the whole story ------------------------------------------------------------------
def test_register_profile_query(client: TestClient) -> None:
    token = add_device(client, "pixel")
    job_id = run_job(client, "pixel", token)
    job = client.get(f"/v1/jobs/{job_id}").json()
    total = len(fbnet_space(32).distinct_entries())
    assert job["progress"] == {"pending": 0, "leased": 0, "done": total, "failed": 0, "total": total}

    lut = LatencyTable.from_dict(client.get("/v1/devices/pixel/luts/latest").json())
    assert lut.complete and len(lut.entries) == total and lut.space == fbnet_space(32)
    entry = fbnet_space(32).layers[5].entry("k5_e6")
    for key in (entry.key, entry.hwnasbench_key(), entry.proxyless_key()):
        r = client.get(f"/v1/devices/pixel/luts/{job_id}/entries/{key}")
        assert r.status_code == 200, r.text
        assert r.json()["latency_us"] == lut.latency(entry) and r.json()["unit"] == "us"
    by_fields = client.get("/v1/devices/pixel/luts/latest/entry", params=entry.fields()).json()
    assert by_fields["entry_key"] == entry.key

    batch = client.post(
        "/v1/devices/pixel/luts/latest/batch",
        json={"keys": [entry.proxyless_key(), "tbs_h9_w9_cin8_cout8_s1_k3_e1_g1"]},
    ).json()
    assert list(batch["entries"]) == [entry.proxyless_key()] and batch["missing"] == [
        "tbs_h9_w9_cin8_cout8_s1_k3_e1_g1"
    ]

    arch = client.post("/v1/devices/pixel/luts/latest/latency", json={"arch": ARCH}).json()
    assert arch["complete"] and arch["missing"] == []
    assert arch["total_us"] == pytest.approx(lut.network_latency(ARCH))
    assert [layer["layer"] for layer in arch["layers"]][:2] == ["stem", "layer0"] and len(arch["layers"]) == 26

    csv_text = client.get("/v1/devices/pixel/luts/latest", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("key,entry_key,op") and len(csv_text.splitlines()) == total + 1


def test_latest_is_the_newest_complete_lut_and_compare(client: TestClient) -> None:
    a, b = add_device(client, "a"), add_device(client, "b")
    assert client.get("/v1/devices/a/luts/latest/entries/x").status_code == 404
    run_job(client, "a", a)
    second = run_job(client, "a", a, scale=2.0)
    run_job(client, "b", b, scale=3.0)
    # a newer, unfinished job does not move `latest`
    client.post("/v1/devices/a/jobs", json={"resolution": 32}, headers=bearer(a))
    key = fbnet_space(32).layers[0].entry("k3_e1").key
    assert (
        client.get(f"/v1/devices/a/luts/latest/entries/{key}").json()["latency_us"]
        == client.get(f"/v1/devices/a/luts/{second}/entries/{key}").json()["latency_us"]
    )
    cmp = client.get("/v1/compare", params={"a": "a", "b": "b"}).json()
    assert cmp["a_lut"] == second and cmp["geomean_ratio"] == pytest.approx(1.5)
    assert all(row["ratio"] == pytest.approx(1.5) for row in cmp["entries"])


def test_missing_entries_are_flagged(client: TestClient) -> None:
    token = add_device(client, "half")
    job_id = client.post("/v1/devices/half/jobs", json={"resolution": 32}, headers=bearer(token)).json()["id"]
    lease = client.post(f"/v1/jobs/{job_id}/claim", json={"agent": "t", "max_items": 10}, headers=bearer(token)).json()
    results = [{"item_id": i["item_id"], "stats": {"median": 2.0}} for i in lease["items"]]
    client.post(
        f"/v1/jobs/{job_id}/results", json={"lease_id": lease["lease_id"], "results": results}, headers=bearer(token)
    )
    assert client.get("/v1/devices/half/luts/latest/entries/x").status_code == 404  # nothing complete
    arch = client.post(f"/v1/devices/half/luts/{job_id}/latency", json={"arch": ARCH}).json()
    assert not arch["complete"] and arch["missing"]
    assert {layer["key"] for layer in arch["layers"] if layer["latency_us"] is None} == set(arch["missing"])


@pytest.mark.parametrize("name", ["ofa_note10_224.yaml", "proxylessnas_mobile_trim.yaml"])
def test_import_and_export_reference_tables(client: TestClient, name: str) -> None:
    import yaml

    token = add_device(client, "phone")
    source = (REFERENCE_LUTS / name).read_text()
    r = client.post("/v1/devices/phone/luts", json={"content": source}, headers=bearer(token))
    assert r.status_code == 201, r.text
    fmt = r.json()["source_format"]
    out = client.get("/v1/devices/phone/luts/latest", params={"format": fmt})
    assert yaml.safe_load(out.text) == yaml.safe_load(source)
    first = next(iter(yaml.safe_load(source)))
    got = client.get(f"/v1/devices/phone/luts/latest/entries/{first}").json()
    assert got["latency_us"] == yaml.safe_load(source)[first]["mean"] * 1000
    # without a space there is no hwlut JSON document: a 409 that says why
    r = client.get("/v1/devices/phone/luts/latest")
    assert r.status_code == 409 and r.json()["detail"][0]["loc"] == ["query", "format"]


# -- auth -------------------------------------------------------------------------------
WRITES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/devices", {"name": "new-device"}),
    ("DELETE", "/v1/devices/{dev}", None),
    ("POST", "/v1/devices/{dev}/tokens", None),
    ("POST", "/v1/devices/{dev}/jobs", {"resolution": 32}),
    ("POST", "/v1/devices/{dev}/luts", {"content": "key,latency_us\ntbs_h8_w8_cin8_cout8_s1_k3_e1_g1,1.5\n"}),
    ("POST", "/v1/jobs/{job}/claim", {"agent": "x"}),
    ("POST", "/v1/jobs/{job}/heartbeat", {"lease_id": "{lease}"}),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "{lease}", "results": [{"item_id": "{item}", "stats": {"median": 1.0}}]},
    ),
    ("POST", "/v1/jobs/{job}/failures", {"lease_id": "{lease}", "item_id": "{item}", "error": "x"}),
    ("POST", "/v1/devices/{dev}/luts/{job}/validation", {"n": 2, "seed": 1}),
]
ADMIN_ONLY = {"/v1/devices", "/v1/devices/{dev}", "/v1/devices/{dev}/tokens"}


def _fill(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ctx:
        return ctx[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ctx)
    if isinstance(value, dict):
        return {k: _fill(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ctx) for v in value]
    return value


@pytest.mark.parametrize("who", ["nobody", "read", "other-device", "garbage", "own-device", "admin"])
@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_auth_matrix(store: Store, who: str, method: str, path: str, body: Any) -> None:
    with make_client(store, read_token=READ) as c:
        own, other = add_device(c, "mine"), add_device(c, "theirs")
        job = c.post("/v1/devices/mine/jobs", json={"resolution": 32}, headers=bearer(own)).json()["id"]
        lease = c.post(f"/v1/jobs/{job}/claim", json={"agent": "a", "max_items": 2}, headers=bearer(own)).json()
        ctx = {"dev": "mine", "job": job, "lease": lease["lease_id"], "item": lease["items"][0]["item_id"]}
        token = {
            "nobody": None,
            "read": READ,
            "other-device": other,
            "garbage": "hwlut_nope",
            "own-device": own,
            "admin": ADMIN,
        }[who]
        before = db_fingerprint(store)
        r = c.request(method, _fill(path, ctx), json=_fill(body, ctx), headers=bearer(token))
        allowed = who == "admin" or (who == "own-device" and path not in ADMIN_ONLY)
        if allowed:
            assert r.status_code < 300, r.text
        else:
            assert r.status_code == (401 if token is None else 403), r.text
            assert r.json()["detail"][0]["loc"] == ["header", "authorization"]
            assert db_fingerprint(store) == before


def test_reads_need_a_token_when_a_read_token_is_set(store: Store) -> None:
    with make_client(store, read_token=READ) as c:
        own = add_device(c, "d")
        assert c.get("/v1/devices").status_code == 401
        assert c.get("/v1/devices", headers=bearer("wrong")).status_code == 403
        for token in (READ, ADMIN, own):
            assert c.get("/v1/devices", headers=bearer(token)).status_code == 200
        assert c.get("/v1/health").status_code == 200


def test_no_admin_token_refuses_writes(store: Store) -> None:
    with make_client(store, admin_token=None) as c:
        r = c.post("/v1/devices", json={"name": "x"}, headers=bearer("anything"))
        assert r.status_code == 403 and "HWLUT_ADMIN_TOKEN" in r.json()["detail"][0]["msg"]


def test_tokens_are_stored_hashed(client: TestClient, store: Store) -> None:
    token = add_device(client, "d")
    with store.transaction() as session:
        dump = json.dumps([list(map(str, r)) for r in session.execute(text("SELECT * FROM device_tokens")).all()])
    assert token not in dump and hashlib.sha256(token.encode()).hexdigest() in dump


# -- bad input -------------------------------------------------------------------------
NAN_BODY = b'{"lease_id": "{lease}", "results": [{"item_id": {item}, "stats": {"median": NaN}}]}'
BAD: list[tuple[str, str, Any, int, list[Any]]] = [
    ("POST", "/v1/devices", {"name": "bad name!"}, 422, ["body", "name"]),
    ("POST", "/v1/devices", {"name": "ok", "colour": "red"}, 422, ["body", "colour"]),
    ("POST", "/v1/devices", {"name": "mine"}, 409, ["body", "name"]),
    ("POST", "/v1/devices", b'{"name": "ok", "hardware": {"ghz": Infinity}}', 422, ["body", "hardware"]),
    ("POST", "/v1/devices/mine/jobs", {"space": "nope"}, 422, ["body", "space"]),
    (
        "POST",
        "/v1/devices/mine/jobs",
        {"space": {"name": "x", "resolution": 32, "stages": [], "candidates": ["k3_e1"]}},
        422,
        ["body", "space"],
    ),
    (
        "POST",
        "/v1/devices/mine/jobs",
        {"space": {"name": "x", "resolution": 32, "stages": [{"channels": 8, "repeats": 1}], "candidates": ["k4_e1"]}},
        422,
        ["body", "space"],
    ),
    ("POST", "/v1/devices/mine/jobs", {"resolution": 0}, 422, ["body", "resolution"]),
    # a job's settings (searchspace.jobs.JobSettings): one no agent could use is refused, named
    ("POST", "/v1/devices/mine/jobs", {"resolution": 32, "runtime": "tflit"}, 422, ["body", "runtime"]),
    (
        "POST",
        "/v1/devices/mine/jobs",
        {"resolution": 32, "options": {"cache_mode": "tepid"}},
        422,
        ["body", "options", "cache_mode"],
    ),
    (
        "POST",
        "/v1/devices/mine/jobs",
        {"resolution": 32, "options": {"protocol": {"time_cap_s": 0}}},
        422,
        ["body", "options", "protocol", "time_cap_s"],
    ),
    (
        "POST",
        "/v1/devices/mine/jobs",
        {"resolution": 32, "runtime": "ort", "options": {"xnnpack": True}},
        422,
        ["body", "options", "xnnpack"],
    ),
    (
        "POST",
        "/v1/devices/mine/jobs",
        {"resolution": 32, "options": {"entries": ["x"]}},
        422,
        ["body", "options", "entries"],
    ),
    ("POST", "/v1/devices/ghost/jobs", {"resolution": 32}, 404, ["path", "name"]),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "{lease}", "results": [{"item_id": "{item}", "stats": {"median": -1.0}}]},
        422,
        ["body", "results", 0, "stats", "median"],
    ),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "{lease}", "results": [{"item_id": "{item}", "stats": {"median": 1e12}}]},
        422,
        ["body", "results", 0, "stats", "median"],
    ),
    ("POST", "/v1/jobs/{job}/results", NAN_BODY, 422, ["body", "results", 0, "stats", "median"]),
    (  # every statistic of the registry (searchspace.fields) is checked where it enters, named
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "{lease}", "results": [{"item_id": "{item}", "stats": {"median": 1.0, "max": -1.0}}]},
        422,
        ["body", "results", 0, "stats", "max"],
    ),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "{lease}", "results": [{"item_id": "{item}", "stats": {"median": 1.0, "count": 0}}]},
        422,
        ["body", "results", 0, "stats", "count"],
    ),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "{lease}", "results": [{"item_id": "{item}", "stats": {"median": 1.0, "confidence": 1.5}}]},
        422,
        ["body", "results", 0, "stats", "confidence"],
    ),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "{lease}", "results": [{"key": "tbs_bad", "stats": {"median": 1}}]},
        422,
        ["body", "results", 0, "key"],
    ),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {"lease_id": "other", "results": [{"item_id": "{item}", "stats": {"median": 1.0}}]},
        409,
        ["body", "results", 0, "item_id"],
    ),
    (
        "POST",
        "/v1/jobs/{job}/results",
        {
            "lease_id": "{lease}",
            "results": [{"item_id": "{item}", "stats": {"median": 1.0}}, {"item_id": 999999, "stats": {"median": 1.0}}],
        },
        404,
        ["body", "results", 1, "item_id"],
    ),
    ("POST", "/v1/jobs/{job}/claim", {"agent": "a", "max_items": 0}, 422, ["body", "max_items"]),
    ("POST", "/v1/jobs/{job}/claim", {"agent": "a", "lease_id": "short"}, 422, ["body", "lease_id"]),
    ("POST", "/v1/devices/mine/luts", {"content": "key,latency_us\nnot_a_key,1\n"}, 422, ["body", "content"]),
    (
        "POST",
        "/v1/devices/mine/luts",
        {"content": "key,latency_us\ntbs_h8_w8_cin8_cout8_s1_k3_e1_g1,nan\n"},
        422,
        ["body", "content"],
    ),
    ("GET", "/v1/devices/mine/luts/{job}/entries/tbs_h8_w8_cin8_cout8_s1_k4_e1_g1", None, 422, ["path", "key"]),
    ("GET", "/v1/devices/mine/luts/{job}/entries/garbage", None, 422, ["path", "key"]),
    ("GET", "/v1/devices/mine/luts/{job}/entry?op=blob&cin=8&cout=8&h=8&w=8", None, 422, ["query", "op"]),
    ("GET", "/v1/devices/mine/luts/{job}/entry?op=tbs&cin=8&cout=8&h=8&w=8&kernel=2", None, 422, ["query", "kernel"]),
    ("GET", "/v1/devices/mine/luts/{job}/entry?op=tbs&cin=-8&cout=8&h=8&w=8", None, 422, ["query", "cin"]),
    ("GET", "/v1/devices/mine/luts/yesterday/entries/x", None, 422, ["path", "lut"]),
    (
        "POST",
        "/v1/devices/mine/luts/{job}/batch",
        {"keys": ["tbs_h8_w8_cin8_cout8_s1_k3_e1_g1", "oops"]},
        422,
        ["body", "keys", 1],
    ),
    ("POST", "/v1/devices/mine/luts/{job}/latency", {"arch": "k3_e1,k9_e9"}, 422, ["body", "arch"]),
    ("GET", "/v1/devices/mine/luts/{job}?format=xml", None, 422, ["query", "format"]),
    ("POST", "/v1/devices", b"{not json", 422, ["body", 1]),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "loc"), BAD, ids=[f"{b[0]} {b[1]} {b[4]}" for b in BAD])
def test_bad_input_is_a_4xx_naming_the_field(
    store: Store, method: str, path: str, body: Any, status: int, loc: list[Any]
) -> None:
    with make_client(store) as c:
        own = add_device(c, "mine")
        job = c.post("/v1/devices/mine/jobs", json={"resolution": 32}, headers=bearer(own)).json()["id"]
        lease = c.post(f"/v1/jobs/{job}/claim", json={"agent": "a", "max_items": 2}, headers=bearer(own)).json()
        ctx = {"job": job, "lease": lease["lease_id"], "item": lease["items"][0]["item_id"]}
        before = db_fingerprint(store)
        kwargs: dict[str, Any] = {"headers": bearer(ADMIN)}
        if isinstance(body, bytes):
            raw = body.replace(b"{lease}", ctx["lease"].encode()).replace(b"{item}", str(ctx["item"]).encode())
            kwargs["content"] = raw
            kwargs["headers"]["content-type"] = "application/json"
        elif body is not None:
            kwargs["json"] = _fill(body, ctx)
        r = c.request(method, _fill(path, ctx), **kwargs)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert detail[0]["loc"][: len(loc)] == loc, detail
        assert db_fingerprint(store) == before


def test_body_too_large(store: Store) -> None:
    with make_client(store, max_body_bytes=1000) as c:
        before = db_fingerprint(store)
        r = c.post("/v1/devices", json={"name": "x", "description": "y" * 5000}, headers=bearer(ADMIN))
        assert r.status_code == 413 and r.json()["detail"][0]["loc"] == ["body"]

        def chunks() -> Iterator[bytes]:  # no content-length: counted as it streams
            yield b'{"name": "x", "description": "'
            for _ in range(50):
                yield b"y" * 100
            yield b'"}'

        r = c.post("/v1/devices", content=chunks(), headers={**bearer(ADMIN), "content-type": "application/json"})
        assert r.status_code == 413
        assert db_fingerprint(store) == before


def test_server_refuses_a_database_that_is_behind(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    app = create_app(Settings(admin_token=ADMIN), store=store)
    with pytest.raises(SchemaBehind, match="hwlut db upgrade"), TestClient(app):
        pass
    store.dispose()


def test_openapi_describes_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    ops = [(p, m, op) for p, item in schema["paths"].items() for m, op in item.items()]
    assert len(ops) >= 17
    for path, method, op in ops:
        assert op.get("summary") and op.get("description"), (path, method)
        if path not in ("/v1/health", "/health", "/ready"):
            assert "422" in op["responses"], (path, method)

    stats = schema["components"]["schemas"]["EntryStats"]
    assert list(stats["properties"]) == list(STAT_FIELDS) and stats["required"] == ["median"]


# -- a LUT's accuracy: stored, served, and used by the latency route ---------------------------------
def _accuracy_doc(archs: list[str], raw: list[float], slope: float = 1.1, intercept: float = 50.0) -> dict[str, Any]:
    """A validation (as ValidationResult.to_dict writes it) where each network takes ``slope * raw + intercept``."""
    from searchspace.accuracy import NetworkRow, accuracy_report

    rows = [NetworkRow(a, slope * r + intercept, r, 26) for a, r in zip(archs, raw, strict=True)]
    report = accuracy_report(rows, overhead_us=1.0, split_seed=1, meta={"space": "fbnet", "resolution": 32})
    return {
        "plan": {"seed": 1, "n": len(archs), "named": []},
        "lut_cache_mode": "warm",
        "runtime": {"runtime": "ort", "threads": 1},
        "finished_at": "2026-11-28T00:00:00+00:00",
        "report": report.to_dict(),
        "networks": [
            {"arch": a, "artifact": f"net{i}", "stats": {"median": 1.0}, "sentinel": None} for i, a in enumerate(archs)
        ],
    }


def _archs(n: int) -> list[str]:
    import random

    space = fbnet_space(32)
    rng = random.Random(7)
    return list(dict.fromkeys(space.sample(rng).encode() for _ in range(n * 3)))[:n]


def full_fingerprint(store: Store) -> str:
    with store.transaction() as session:
        rows = session.execute(text("SELECT * FROM network_measurements ORDER BY id")).all()
    return db_fingerprint(store) + hashlib.sha256(repr([tuple(map(str, r)) for r in rows]).encode()).hexdigest()


def test_accuracy_is_stored_served_and_calibrates_the_latency_route(client: TestClient) -> None:
    token = add_device(client, "acc")
    other = add_device(client, "other")
    job_id = run_job(client, "acc", token)
    lut = LatencyTable.from_dict(client.get("/v1/devices/acc/luts/latest").json())
    r = client.get("/v1/devices/acc/luts/latest/accuracy")
    assert r.status_code == 404 and "no accuracy report" in r.json()["detail"][0]["msg"]
    before = client.post("/v1/devices/acc/luts/latest/latency", json={"arch": ARCH}).json()
    assert before["calibrated_us"] is None and before["accuracy"] is None and before["calibration"] is None

    archs = _archs(10)
    doc = _accuracy_doc(archs, [lut.network_latency(a) for a in archs])
    assert client.put("/v1/devices/acc/luts/latest/accuracy", json=doc).status_code == 401
    r = client.put("/v1/devices/acc/luts/latest/accuracy", json=doc, headers=bearer(other))
    assert r.status_code == 403
    r = client.put(f"/v1/devices/acc/luts/{job_id}/accuracy", json=doc, headers=bearer(token))
    assert r.status_code == 200, r.text
    got = client.get("/v1/devices/acc/luts/latest/accuracy").json()
    assert got["lut"] == job_id and got["uploaded_at"] and got["plan"] == doc["plan"]
    assert json.loads(json.dumps(got["report"]["rows"])) == doc["report"]["rows"]
    assert got["report"]["calibrated"] == doc["report"]["calibrated"] and got["networks"] == doc["networks"]
    assert {k: got["report"][k] for k in doc["report"]} == doc["report"]

    after = client.post("/v1/devices/acc/luts/latest/latency", json={"arch": ARCH}).json()
    cal = doc["report"]["calibration"]
    # random networks span a narrow band: cross-validation serves a one-parameter correction, not the free line
    assert doc["report"]["chosen"] in ("scale", "offset") and after["total_us"] == before["total_us"]
    assert got["verdict"]["level"] == "rough" and "10 networks" in got["verdict"]["reasons"][0]
    assert after["calibrated_us"] == pytest.approx(cal["slope"] * after["total_us"] + cal["intercept_us"])
    assert after["calibration"] == cal
    assert after["accuracy"]["calibrated"] == doc["report"]["calibrated"] and after["accuracy"]["networks"] == 10
    # The LUT file the server hands out carries the calibration, as `hwlut validate --write-calibration` writes it.
    served = LatencyTable.from_dict(client.get("/v1/devices/acc/luts/latest").json())
    assert served.provenance["calibration"]["slope"] == cal["slope"]
    assert served.provenance["accuracy"]["calibrated"] == doc["report"]["calibrated"]
    assert served.provenance["accuracy"]["plan"] == doc["plan"]

    # A second upload (the admin may write any device) replaces the first, rows included.
    fewer = _accuracy_doc(archs[:4], [lut.network_latency(a) for a in archs[:4]], slope=1.0, intercept=0.0)
    r = client.put("/v1/devices/acc/luts/latest/accuracy", json=fewer, headers=bearer(ADMIN))
    assert r.status_code == 200, r.text
    got = client.get(f"/v1/devices/acc/luts/{job_id}/accuracy").json()
    assert [row["arch"] for row in got["report"]["rows"]] == archs[:4] and len(got["networks"]) == 4
    again = client.post("/v1/devices/acc/luts/latest/latency", json={"arch": ARCH}).json()
    assert again["accuracy"]["networks"] == 4
    # 4 networks: too few to cross-validate a calibration, so none is served (the raw sum is)
    assert fewer["report"]["calibration"] is None and again["calibrated_us"] is None


def test_the_latency_route_calibrates_with_a_lut_files_own_calibration(client: TestClient) -> None:
    add_device(client, "filed")
    space = fbnet_space(32)
    table = LatencyTable(
        space=space,
        entries={e.key: {"median": 10.0} for e in space.distinct_entries()},
        provenance={
            "calibration": {"kind": "linear", "slope": 2.0, "intercept_us": 5.0, "fitted_on": ["a", "b"]},
            "accuracy": {"networks": 4, "raw": {"n": 4, "within_10": 0.5}, "calibrated": None, "held_out": 2},
        },
    )
    r = client.post("/v1/devices/filed/luts", json={"content": json.dumps(table.to_dict())}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    arch = client.post("/v1/devices/filed/luts/latest/latency", json={"arch": ARCH}).json()
    assert arch["total_us"] == pytest.approx(260.0) and arch["calibrated_us"] == pytest.approx(525.0)
    assert arch["accuracy"]["raw"] == {"n": 4, "within_10": 0.5} and arch["calibration"]["slope"] == 2.0
    assert client.get("/v1/devices/filed/luts/latest/accuracy").status_code == 404


def _mutate(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    target = doc
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


BAD_ACCURACY = [
    (["report"], KeyError, ["body", "report"]),
    (["report", "raw", "within_5"], 1.5, ["body", "report", "raw", "within_5"]),
    (["report", "raw", "spearman"], 2.0, ["body", "report", "raw", "spearman"]),
    (["report", "rows", 0, "measured_us"], 0, ["body", "report", "rows", 0, "measured_us"]),
    (["report", "rows", 0, "measured_us"], "fast", ["body", "report", "rows", 0, "measured_us"]),
    (["report", "rows", 1, "entries"], 0, ["body", "report", "rows", 1, "entries"]),
    (["report", "rows", 1, "role"], "both", ["body", "report", "rows", 1, "role"]),
    (["report", "calibration", "kind"], "cubic", ["body", "report", "calibration", "kind"]),
    (["report", "calibration", "slope"], None, ["body", "report", "calibration", "slope"]),
    (["report", "unit"], "ms", ["body", "report", "unit"]),
    (["report", "surprise"], 1, ["body", "report", "surprise"]),
    (["report", "networks"], 3, ["body", "report"]),  # 3 networks, 10 rows
    (["report", "split", "held_out"], [99], ["body", "report"]),  # out of range
    (["report", "selection", "oof_us"], [1.0], ["body", "report"]),  # not one out-of-fold prediction per row
    (["report", "selection", "chosen"], "none", ["body", "report"]),  # the served calibration is not the chosen
    (["report", "selection", "chosen"], "cubic", ["body", "report", "selection", "chosen"]),
    (["plan", "seed"], "x", ["body", "plan", "seed"]),
]


@pytest.mark.parametrize(("path", "value", "loc"), BAD_ACCURACY)
def test_bad_accuracy_uploads_are_refused_by_field_and_write_nothing(
    client: TestClient, store: Store, path: list[Any], value: Any, loc: list[Any]
) -> None:
    token = add_device(client, "bad")
    run_job(client, "bad", token)
    archs = _archs(10)
    good = _accuracy_doc(archs, [1000.0 + 10 * i for i in range(10)])
    before = full_fingerprint(store)
    r = client.put("/v1/devices/bad/luts/latest/accuracy", json=_mutate(good, path, value), headers=bearer(token))
    assert r.status_code == 422, r.text
    assert any(p["loc"][: len(loc)] == loc for p in r.json()["detail"]), r.json()
    assert full_fingerprint(store) == before
    assert client.get("/v1/devices/bad/luts/latest/accuracy").status_code == 404


def test_accuracy_refusals_that_are_not_about_the_body(client: TestClient, store: Store) -> None:
    token = add_device(client, "ref")
    archs = _archs(4)
    doc = _accuracy_doc(archs, [1000.0, 1100.0, 1200.0, 1300.0])
    r = client.put("/v1/devices/ref/luts/latest/accuracy", json=doc, headers=bearer(token))
    assert r.status_code == 404 and "no complete LUT" in r.text
    run_job(client, "ref", token)
    before = full_fingerprint(store)
    # a (half-split) calibration "fitted" on a network it is reported on
    cheat = json.loads(json.dumps(doc))
    cheat["report"].update(
        selection=None,
        split={"seed": 1, "fit": [0, 1], "held_out": [2, 3]},
        calibration={"kind": "scale", "slope": 1.0, "fitted_on": [archs[0], archs[2]]},
        calibrated={**cheat["report"]["raw"], "n": 2},
    )
    r = client.put("/v1/devices/ref/luts/latest/accuracy", json=cheat, headers=bearer(token))
    assert r.status_code == 422 and "held-out" in r.text
    # a report of another space
    other = _mutate(doc, ["report", "meta", "resolution"], 224)
    r = client.put("/v1/devices/ref/luts/latest/accuracy", json=other, headers=bearer(token))
    assert r.status_code == 409 and r.json()["detail"][0]["loc"] == ["body", "report", "meta", "resolution"]
    r = client.put("/v1/devices/ref/luts/999999/accuracy", json=doc, headers=bearer(token))
    assert r.status_code == 404
    r = client.get("/v1/devices/nobody/luts/latest/accuracy")
    assert r.status_code == 404
    assert full_fingerprint(store) == before


def test_an_upload_measured_differently_from_the_jobs_results_is_a_409_naming_the_fields(
    client: TestClient, store: Store
) -> None:
    """The store enforces the checked provenance where results enter: refused whole, nothing written."""
    token = add_device(client, "box")
    job = client.post("/v1/devices/box/jobs", json={"resolution": 32, "runtime": "ort"}, headers=bearer(token)).json()
    lease = client.post(
        f"/v1/jobs/{job['id']}/claim", json={"agent": "a", "max_items": 2}, headers=bearer(token)
    ).json()
    first, second = (i["item_id"] for i in lease["items"])
    measured = {
        "runtime": {"runtime": "ort", "threads": 1},
        "exporter": {"format": "onnx", "versions": {"torch": "2.13.0"}},
        "host": {"cpu_model": "Test CPU", "machine": "x86_64"},
    }

    def upload(item: int, provenance: dict[str, Any]) -> Any:
        body = {"lease_id": lease["lease_id"], "results": [{"item_id": item, "stats": {"median": 2.0}}]}
        return client.post(
            f"/v1/jobs/{job['id']}/results", json={**body, "provenance": provenance}, headers=bearer(token)
        )

    assert upload(first, measured).status_code == 200
    before = db_fingerprint(store)
    r = upload(second, {**measured, "runtime": {"runtime": "ort", "threads": 2}})
    assert r.status_code == 409, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"] == ["body", "provenance"] and problem["type"] == "conflict"
    assert "provenance.runtime.threads: 1 != 2" in problem["msg"]
    assert db_fingerprint(store) == before
    shown = client.get(f"/v1/jobs/{job['id']}", headers=bearer(token)).json()
    assert shown["progress"]["done"] == 1 and shown["progress"]["leased"] == 1
    assert upload(second, measured).status_code == 200  # measured alike: accepted
