"""Complete LUTs served from memory: no database per query, the same answers, and never stale within a process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from test_server import ADMIN, READ, add_device, bearer, make_client, run_job

from lut_store import Store, crud
from searchspace import fbnet_space
from server.cache import LutCache

KEY = fbnet_space(32).layers[5].entry("k5_e6")


@contextmanager
def db_connections(store: Store) -> Iterator[list[Any]]:
    """Every connection the store's pool hands out inside the block."""
    seen: list[Any] = []

    def checkout(conn: Any, _record: Any, _proxy: Any) -> None:
        seen.append(conn)

    event.listen(store.engine, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(store.engine, "checkout", checkout)


def _entry(c: TestClient, key: str, lut: str = "latest", token: str | None = None) -> Any:
    return c.get(f"/v1/devices/d/luts/{lut}/entries/{key}", headers=bearer(token))


def test_cached_reads_touch_no_database_and_answer_alike(store: Store) -> None:
    with make_client(store, lut_cache_ttl_s=3600) as c:
        token = add_device(c, "d")
        job = run_job(c, "d", token)
        first = [_entry(c, k) for k in (KEY.key, KEY.hwnasbench_key(), KEY.proxyless_key())]
        doc = c.get("/v1/devices/d/luts/latest", params={"format": "csv"})
        by_fields = c.get("/v1/devices/d/luts/latest/entry", params=KEY.fields())
        with db_connections(store) as used:
            again = [_entry(c, k) for k in (KEY.key, KEY.hwnasbench_key(), KEY.proxyless_key())]
            again_doc = c.get("/v1/devices/d/luts/latest", params={"format": "csv"})
            again_fields = c.get("/v1/devices/d/luts/latest/entry", params=KEY.fields())
            by_id = _entry(c, KEY.key, lut=str(job))
        assert len(used) == 1  # only the first query by job id reads the database
        for a, b in [*zip(first, again, strict=True), (doc, again_doc), (by_fields, again_fields)]:
            assert (a.status_code, a.content) == (b.status_code, b.content) and a.status_code == 200
            assert a.headers["content-type"] == b.headers["content-type"]
            assert a.headers["content-length"] == b.headers["content-length"]
        assert again[0].json()["entry_key"] == KEY.key and again[1].json()["entry_key"] == KEY.key
        assert again_doc.headers["x-hwlut-lut"] == str(job) and by_id.content == again[0].content
        # errors still come from the routes: unknown entry, bad key, unknown device
        assert _entry(c, "tbs_h9_w9_cin8_cout8_s1_k3_e1_g1").status_code == 404
        assert _entry(c, "garbage").json()["detail"][0]["loc"] == ["path", "key"]
        assert c.get(f"/v1/devices/ghost/luts/latest/entries/{KEY.key}").status_code == 404


def test_writes_through_the_server_are_seen_at_once(store: Store) -> None:
    with make_client(store, lut_cache_ttl_s=3600) as c:
        token = add_device(c, "d")
        run_job(c, "d", token, scale=1.0)
        before = _entry(c, KEY.key).json()["latency_us"]
        assert _entry(c, KEY.key).json()["latency_us"] == before  # cached now
        newer = run_job(c, "d", token, scale=2.0)  # completing a job moves `latest`
        assert _entry(c, KEY.key).json()["latency_us"] == 2 * before
        assert c.get("/v1/devices/d/luts/latest").headers["x-hwlut-lut"] == str(newer)
        assert c.delete("/v1/devices/d", headers=bearer(ADMIN)).status_code == 204
        assert _entry(c, KEY.key).status_code == 404
        assert c.get("/v1/devices/d/luts/latest").status_code == 404
        assert _entry(c, KEY.key, lut=str(newer)).status_code == 404


def test_another_process_is_seen_after_the_time_to_live(store: Store) -> None:
    now = [0.0]
    with make_client(store, lut_cache_ttl_s=5.0) as c:
        c.app.state.lut_cache.clock = lambda: now[0]
        token = add_device(c, "d")
        run_job(c, "d", token, scale=1.0)
        before = _entry(c, KEY.key).json()["latency_us"]
        with store.transaction(write=True) as session:  # as `hwlut lut import` or another worker would
            device = crud.get_device(session=session, name="d")
            job = crud.create_job(session=session, device=device, spec=fbnet_space(32), settings={"runtime": "ort"})
            lease = crud.claim_items(session=session, job=job, agent="other", max_items=10_000)
            results = [{"item_id": i.id, "stats": {"median": 7.0}} for i in lease.items]
            crud.upload_results(session=session, job=job, lease_id=lease.lease_id, results=results)
        assert _entry(c, KEY.key).json()["latency_us"] == before  # within the time to live
        now[0] = 5.5
        assert _entry(c, KEY.key).json()["latency_us"] == 7.0
        assert _entry(c, KEY.key).json()["latency_us"] == 7.0


def test_read_token_still_guards_cached_reads(store: Store) -> None:
    with make_client(store, read_token=READ, lut_cache_ttl_s=3600) as c:
        token = add_device(c, "d")
        other = add_device(c, "e")
        run_job(c, "d", token)
        assert _entry(c, KEY.key, token=READ).status_code == 200  # cached from here on
        assert _entry(c, KEY.key).status_code == 401
        assert _entry(c, KEY.key, token="wrong").status_code == 403
        assert c.get("/v1/devices/d/luts/latest", headers=bearer("wrong")).status_code == 403
        with db_connections(store) as used:
            for who in (READ, ADMIN, other, other):
                assert _entry(c, KEY.key, token=who).status_code == 200
        assert len(used) == 1  # the device token is looked up once
        assert c.delete("/v1/devices/e", headers=bearer(ADMIN)).status_code == 204
        assert _entry(c, KEY.key, token=other).status_code == 403  # its token died with it


def test_an_expired_reference_is_read_again_by_one_caller() -> None:
    now = [0.0]
    cache = LutCache(ttl_s=1.0, clock=lambda: now[0])
    marker = object()
    cache._refs[("d", "latest")] = [1.0, marker, False]
    assert cache.lookup("d", "latest") is marker and cache.peek("d", "latest") is marker
    now[0] = 2.0
    assert cache.peek("d", "latest") is None  # a peek never claims the refresh
    assert cache.lookup("d", "latest") is None  # the first caller reads it again ...
    assert cache.lookup("d", "latest") is marker  # ... while the others are answered from memory
    assert cache.peek("d", "latest") is marker
    cache.invalidate()
    assert cache.lookup("d", "latest") is None and cache.generation == 1


def test_framework_refusals_name_the_field(store: Store) -> None:
    with make_client(store) as c:
        r = c.post("/v1/devices", content=b"\xff\xfe{", headers={**bearer(ADMIN), "content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"
        r = c.request("PATCH", "/v1/devices")
        assert r.status_code == 405 and r.json()["detail"][0]["type"] == "method_not_allowed"
        assert c.get("/v1/nowhere").json()["detail"][0]["type"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "loc"),
    [
        ("GET", "/v1/jobs/99999999999999999999", None, 422, ["path", "job_id"]),
        ("POST", "/v1/jobs/99999999999999999999/claim", {"agent": "a"}, 422, ["path", "job_id"]),
        ("GET", "/v1/devices/d/luts/99999999999999999999/entries/x", None, 404, ["path", "lut"]),
        ("GET", "/v1/devices/d/luts/99999999999999999999", None, 404, ["path", "lut"]),
        ("GET", "/v1/devices/d/luts/0/entries/x", None, 404, ["path", "lut"]),
    ],
)
def test_huge_ids_are_refused_not_crashed_on(
    store: Store, method: str, path: str, body: Any, status: int, loc: list[str]
) -> None:
    with make_client(store) as c:
        add_device(c, "d")
        r = c.request(method, path, json=body, headers=bearer(ADMIN))
        assert r.status_code == status, r.text
        assert r.json()["detail"][0]["loc"] == loc


def test_openapi_documents_the_body_limit_and_the_lut_media_types(store: Store) -> None:
    with make_client(store) as c:
        schema = c.get("/openapi.json").json()
    for item in schema["paths"].values():
        for op in item.values():
            assert ("413" in op["responses"]) == ("requestBody" in op)
    download = schema["paths"]["/v1/devices/{name}/luts/{lut}"]["get"]["responses"]["200"]
    assert set(download["content"]) == {"application/json", "text/csv", "application/yaml"}
    assert "X-Hwlut-Lut" in download["headers"]
