"""Hostile input over every write route (and the reads a path or query can poison), on SQLite and PostgreSQL.

Each request is answered 4xx with a location naming the field, and the
database is the same before and after (a dump of every table). Bodies are
sent as raw JSON text, so NaN, lone surrogates and NUL bytes reach the server
as a hostile client would send them. Then: what was accepted can be served.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from test_server import ADMIN, _accuracy_doc, _archs, add_device, bearer, make_client
from testdata import need_postgres

from lut_store import Store
from lut_store.models import Base
from lut_store.testing import empty_store

KEY = "tbs_h8_w8_cin8_cout8_s1_k3_e1_g1"
DEEP: Any = "x"
for _ in range(100):
    DEEP = {"a": DEEP}
SPEC_HUGE_CHANNELS = {
    "name": "huge",
    "resolution": 32,
    "stages": [{"channels": 2**40, "repeats": 1}],
    "candidates": ["k3_e1"],
}


def dump(store: Store) -> str:
    """Every row of every table, hashed: equal before and after means nothing was written."""
    digest = hashlib.sha256()
    with store.transaction() as session:
        for table in Base.metadata.sorted_tables:
            rows = session.execute(text(f"SELECT * FROM {table.name} ORDER BY id")).all()
            digest.update(repr([tuple(map(str, r)) for r in rows]).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One app per database: two devices, a running job, a lease holding one done and one leased item."""
    if request.param == "postgres":
        need_postgres()
    store = empty_store(request.param, Path(tmp_path_factory.mktemp("hostile")))
    store.upgrade()
    with make_client(store) as c:
        token, other = add_device(c, "dev"), add_device(c, "other")
        r = c.post("/v1/devices/dev/jobs", json={"resolution": 32, "lease_seconds": 3600}, headers=bearer(token))
        job = r.json()["id"]
        lease = c.post(f"/v1/jobs/{job}/claim", json={"agent": "a", "max_items": 2}, headers=bearer(token)).json()
        done, held = (i["item_id"] for i in lease["items"])
        r = c.post(
            f"/v1/jobs/{job}/results",
            json={"lease_id": lease["lease_id"], "results": [{"item_id": done, "stats": {"median": 5.0, "count": 3}}]},
            headers=bearer(token),
        )
        assert r.status_code == 200, r.text
        yield {
            "c": c,
            "store": store,
            "token": token,
            "other": other,
            "job": job,
            "lease": lease["lease_id"],
            "done": done,
            "held": held,
        }
    store.dispose()


def _result(ctx: dict[str, Any], stats: dict[str, Any], item: str = "held") -> dict[str, Any]:
    return {"lease_id": ctx["lease"], "results": [{"item_id": ctx[item], "stats": {"median": 5.0, **stats}}]}


S = ["body", "results", 0, "stats"]
# (name, method, path, body (a function of the context) or raw bytes, who, status, loc prefix)
CASES: list[tuple[str, str, str, Any, str, int, list[Any]]] = [
    ("surrogate in hardware", "POST", "/v1/devices", lambda x: {"name": "n1", "hardware": {"s": "\ud800"}}, "admin",
     422, ["body", "hardware", "s"]),
    ("NUL in hardware", "POST", "/v1/devices", lambda x: {"name": "n1", "hardware": {"s": "a\x00b"}}, "admin", 422,
     ["body", "hardware", "s"]),
    ("NUL in a hardware key", "POST", "/v1/devices", lambda x: {"name": "n1", "hardware": {"a\x00": 1}}, "admin", 422,
     ["body", "hardware"]),
    ("deep hardware", "POST", "/v1/devices", lambda x: {"name": "n1", "hardware": DEEP}, "admin", 422,
     ["body", "hardware"]),
    ("NUL in description", "POST", "/v1/devices", lambda x: {"name": "n1", "description": "\x00"}, "admin", 422,
     ["body", "description"]),
    ("huge int in runtime", "POST", "/v1/devices", lambda x: {"name": "n1", "runtime": {"v": 2**64}}, "admin", 422,
     ["body", "runtime", "v"]),
    ("long name", "POST", "/v1/devices", lambda x: {"name": "n" * 300}, "admin", 422, ["body", "name"]),
    ("SQL in name", "POST", "/v1/devices", lambda x: {"name": "x'; DROP TABLE devices;--"}, "admin", 422,
     ["body", "name"]),
    ("path separator in name", "POST", "/v1/devices", lambda x: {"name": "../etc"}, "admin", 422, ["body", "name"]),
    ("name as number", "POST", "/v1/devices", lambda x: {"name": 5}, "admin", 422, ["body", "name"]),
    ("malformed JSON", "POST", "/v1/devices", b'{"name": ', "admin", 422, ["body"]),
    ("device token creates devices", "POST", "/v1/devices", lambda x: {"name": "n1"}, "token", 403,
     ["header", "authorization"]),
    ("NaN in options", "POST", "/v1/devices/dev/jobs", b'{"resolution": 32, "options": {"x": NaN}}', "token", 422,
     ["body", "options", "x"]),
    ("deep options", "POST", "/v1/devices/dev/jobs", lambda x: {"resolution": 32, "options": DEEP}, "token", 422,
     ["body", "options"]),
    ("spec with 2^40 channels", "POST", "/v1/devices/dev/jobs", lambda x: {"space": SPEC_HUGE_CHANNELS}, "token", 422,
     ["body", "space"]),
    ("spec with 2^40 resolution", "POST", "/v1/devices/dev/jobs",
     lambda x: {"space": {**SPEC_HUGE_CHANNELS, "resolution": 2**40, "stages": [{"channels": 8, "repeats": 1}]}},
     "token", 422, ["body", "space"]),
    ("another device's token", "POST", "/v1/devices/dev/jobs", lambda x: {"resolution": 32}, "other", 403,
     ["header", "authorization"]),
    ("median true", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"median": True}), "token", 422,
     [*S, "median"]),
    ('median "5"', "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"median": "5"}), "token", 422,
     [*S, "median"]),
    ("median NaN", "POST", "/v1/jobs/{job}/results",
     b'{"lease_id": "{lease}", "results": [{"item_id": {held}, "stats": {"median": NaN}}]}', "token", 422,
     [*S, "median"]),
    ("median Infinity", "POST", "/v1/jobs/{job}/results",
     b'{"lease_id": "{lease}", "results": [{"item_id": {held}, "stats": {"median": Infinity}}]}', "token", 422,
     [*S, "median"]),
    ("median 1e300", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"median": 1e300}), "token", 422,
     [*S, "median"]),
    ("min above median", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"min": 9.0}), "token", 422,
     [*S, "median"]),
    ("p90 below p10", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"p10": 4.0, "p90": 3.0}), "token",
     422, [*S, "p90"]),
    ("ci_low above ci_high", "POST", "/v1/jobs/{job}/results",
     lambda x: _result(x, {"ci_low": 6.0, "ci_high": 4.0}), "token", 422, [*S, "ci_high"]),
    ("negative count", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"count": -1}), "token", 422,
     [*S, "count"]),
    ("count true", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"count": True}), "token", 422,
     [*S, "count"]),
    ("surrogate in an extra stat", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"note": "\udfff"}),
     "token", 422, [*S, "note"]),
    ("deep extra stat", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"note": DEEP}), "token", 422,
     [*S, "note"]),
    ("NUL in a stat's name", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"n\x00": 1}), "token", 422, S),
    ("NUL in lease_id", "POST", "/v1/jobs/{job}/results",
     lambda x: {"lease_id": "a\x00", "results": []}, "token", 422, ["body", "lease_id"]),
    ("no results, made-up lease", "POST", "/v1/jobs/{job}/results",
     lambda x: {"lease_id": "made-up", "results": [], "provenance": {"pad": "x" * 100_000}}, "token", 404,
     ["body", "lease_id"]),
    ("done item under a foreign lease", "POST", "/v1/jobs/{job}/results",
     lambda x: {"lease_id": "foreign", "results": [{"item_id": x["done"], "stats": {"median": 1.0}}]}, "token", 409,
     ["body", "results", 0, "item_id"]),
    ("held item under a foreign lease", "POST", "/v1/jobs/{job}/results",
     lambda x: {"lease_id": "foreign", "results": [{"item_id": x["held"], "stats": {"median": 1.0}}]}, "token", 409,
     ["body", "results", 0, "item_id"]),
    ("path separators in a key", "POST", "/v1/jobs/{job}/results",
     lambda x: {"lease_id": x["lease"], "results": [{"key": "../../etc/passwd", "stats": {"median": 1.0}}]}, "token",
     422, ["body", "results", 0, "key"]),
    ("item id 2^63", "POST", "/v1/jobs/{job}/results",
     lambda x: {"lease_id": x["lease"], "results": [{"item_id": 2**63, "stats": {"median": 1.0}}]}, "token", 422,
     ["body", "results", 0, "item_id"]),
    ("other device uploads", "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {}), "other", 403,
     ["header", "authorization"]),
    ("NUL in agent", "POST", "/v1/jobs/{job}/claim", lambda x: {"agent": "\x00"}, "token", 422, ["body", "agent"]),
    ("max_items 2^70", "POST", "/v1/jobs/{job}/claim", lambda x: {"agent": "a", "max_items": 2**70}, "token", 422,
     ["body", "max_items"]),
    ("max_items as text", "POST", "/v1/jobs/{job}/claim", lambda x: {"agent": "a", "max_items": "5"}, "token", 422,
     ["body", "max_items"]),
    ("surrogate in heartbeat", "POST", "/v1/jobs/{job}/heartbeat", lambda x: {"lease_id": "\ud800"}, "token", 422,
     ["body", "lease_id"]),
    ("NUL in an error", "POST", "/v1/jobs/{job}/failures",
     lambda x: {"lease_id": x["lease"], "item_id": x["held"], "error": "boom\x00"}, "token", 422, ["body", "error"]),
    ("release of item ids as text", "POST", "/v1/jobs/{job}/release",
     lambda x: {"lease_id": x["lease"], "item_ids": ["1"]}, "token", 422, ["body", "item_ids", 0]),
    ("accuracy for a running job", "PUT", "/v1/devices/dev/luts/{job}/accuracy",
     lambda x: _accuracy_doc(_archs(4), [1000.0, 1100.0, 1200.0, 1300.0]), "token", 409, ["path", "lut"]),
    ("validation with NUL arch", "POST", "/v1/devices/dev/luts/{job}/validation",
     lambda x: {"archs": ["k3_e1\x00"]}, "token", 422, ["body", "archs", 0]),
    ("CSV count nan", "POST", "/v1/devices/dev/luts", lambda x: {"content": f"key,latency_us,count\n{KEY},1,nan\n"},
     "token", 422, ["body", "content"]),
    ("CSV count inf", "POST", "/v1/devices/dev/luts", lambda x: {"content": f"key,latency_us,count\n{KEY},1,inf\n"},
     "token", 422, ["body", "content"]),
    ("CSV 2^64 channels", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": f"key,latency_us\ntbs_h8_w8_cin{2**64}_cout8_s1_k3_e1_g1,1\n"}, "token", 422, ["body"]),
    ("YAML date", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": "a: {mean: 2020-01-01}\n", "format": "proxyless"}, "token", 422, ["body", "content"]),
    ("YAML binary", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": "a: {mean: !!binary aGVsbG8=}\n", "format": "proxyless"}, "token", 422,
     ["body", "content"]),
    ("YAML aliases", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": "x: &a {mean: 1}\ny: *a\n", "format": "proxyless"}, "token", 422, ["body", "content"]),
    ("OFA key without input", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": "expanded_conv-expand:48: {mean: 1.0, std: 0.1}\n", "format": "ofa"}, "token", 422,
     ["body"]),
    ("OFA key with 0 input channels", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": "expanded_conv-input:8x8x0-output:8x8x8-expand:48-kernel:3-stride:1-idskip:0-se:0-hs:0: "
                "{mean: 1.0, std: 0.1}\n", "format": "ofa"}, "token", 422, ["body"]),
    ("hwlut entries a list", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": json.dumps({"format": "hwlut-lut", "entries": [1, 2]}), "format": "hwlut"}, "token", 422,
     ["body", "content"]),
    ("HW-NAS-Bench 1e8 ms", "POST", "/v1/devices/dev/luts",
     lambda x: {"content": "ConvBlock_x: 1.0e8\n", "format": "hwnasbench"}, "token", 422, ["body", "content"]),
    ("NUL in a path", "GET", "/v1/devices/a%00b", None, "none", 422, ["path"]),
    ("NUL in an entry key", "GET", "/v1/devices/dev/luts/{job}/entries/x%00", None, "none", 422, ["path"]),
    ("NUL in a query", "GET", "/v1/compare?a=dev%00&b=other", None, "none", 422, ["query", "a"]),
    ("token in the query string", "GET", "/v1/whoami?token={token}", None, "none", 401, ["header", "authorization"]),
]  # fmt: skip


def _send(ctx: dict[str, Any], method: str, path: str, body: Any, who: str) -> Any:
    fill = {k: v for k, v in ctx.items() if isinstance(v, str | int)}
    headers = {"admin": bearer(ADMIN), "token": bearer(ctx["token"]), "other": bearer(ctx["other"])}.get(who, {})
    content = None
    if isinstance(body, bytes):
        content = body
        for name, value in fill.items():
            content = content.replace(b"{" + name.encode() + b"}", str(value).encode())
    elif body is not None:
        content = json.dumps(body(ctx)).encode()  # ensure_ascii: a lone surrogate travels as \\ud800
    if content is not None:
        headers = {**headers, "content-type": "application/json"}
    return ctx["c"].request(method, path.format(**fill), content=content, headers=headers)


@pytest.mark.parametrize(("name", "method", "path", "body", "who", "status", "loc"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_by_field_and_writes_nothing(
    world: dict[str, Any], name: str, method: str, path: str, body: Any, who: str, status: int, loc: list[Any]
) -> None:
    before = dump(world["store"])
    r = _send(world, method, path, body, who)
    assert r.status_code == status, (name, r.text)
    assert r.headers["content-type"] == "application/json"
    detail = r.json()["detail"]
    assert detail[0]["loc"][: len(loc)] == loc, (name, detail)
    assert dump(world["store"]) == before, name


def test_what_is_accepted_can_be_served(world: dict[str, Any]) -> None:
    """Unicode that is valid, extra stats, SQL metacharacters in free text: stored, then read back intact."""
    c, token = world["c"], world["token"]
    odd = "ünïcødé 🚀 '; DROP TABLE jobs;-- \\ / %00"
    r = c.post("/v1/devices", json={"name": "odd", "description": odd, "hardware": {odd: [odd]}}, headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    assert c.get("/v1/devices/odd").json()["hardware"] == {odd: [odd]}
    r = _send(world, "POST", "/v1/jobs/{job}/results", lambda x: _result(x, {"note": odd, "min": 4.0}), "token")
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = c.get(f"/v1/devices/dev/luts/{world['job']}/entries/{KEY}")
    assert r.status_code in (200, 404), r.text  # the job is running: served once complete, never a 500
    assert c.get(f"/v1/jobs/{world['job']}", headers=bearer(token)).status_code == 200


def test_provenance_does_not_grow_without_results(world: dict[str, Any]) -> None:
    """A retried upload (duplicates only) brings no provenance: the job row stays as it was."""
    before = dump(world["store"])
    body = {
        "lease_id": world["lease"],
        "results": [{"item_id": world["done"], "stats": {"median": 5.0}}],
        "provenance": {"pad": "x" * 1_000_000},
    }
    r = world["c"].post(f"/v1/jobs/{world['job']}/results", json=body, headers=bearer(world["token"]))
    assert r.status_code == 200 and r.json() == {"accepted": 0, "duplicates": 1, "job_status": "running"}, r.text
    assert dump(world["store"]) == before


def test_a_crash_is_answered_as_json(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from lut_store import crud

    def boom(**_kw: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(crud, "list_devices", boom)
    with TestClient(make_client(store).app, raise_server_exceptions=False) as c:
        r = c.get("/v1/devices")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json()["detail"][0]["type"] == "internal" and "boom" not in r.text


def test_uploads_beyond_the_rate_get_429(store: Store) -> None:
    with make_client(store, upload_rate=0.01) as c:  # a bucket of 1, refilled in 100 s: no clock in the test
        token = add_device(c, "fast")
        job = c.post("/v1/devices/fast/jobs", json={"resolution": 32}, headers=bearer(token)).json()["id"]
        body = {"lease_id": "none-such", "results": []}
        assert c.post(f"/v1/jobs/{job}/results", json=body, headers=bearer(token)).status_code == 404
        r = c.post(f"/v1/jobs/{job}/results", json=body, headers=bearer(token))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "at most 0.01 a second" in r.json()["detail"][0]["msg"]
        assert c.post(f"/v1/jobs/{job}/results", json=body, headers=bearer(ADMIN)).status_code == 404  # per token


def test_options_and_405_name_every_allowed_method(store: Store) -> None:
    with make_client(store) as c:
        r = c.options("/v1/devices/anything")
        assert r.status_code == 204 and r.headers["allow"] == "DELETE, GET, OPTIONS"
        assert c.options("/v1/devices").headers["allow"] == "GET, POST, OPTIONS"
        r = c.patch("/v1/devices/anything")
        assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, OPTIONS"
        assert r.json()["detail"][0]["type"] == "method_not_allowed"
