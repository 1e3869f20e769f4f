"""The dashboard's pages on SQLite and PostgreSQL (ASGI, no browser): they answer, and they write nothing."""

from __future__ import annotations

import pytest
from test_server import ADMIN, add_device, bearer, full_fingerprint, make_client, run_job

from lut_store import Store


def test_every_page_answers_and_changes_nothing(store: Store) -> None:
    with make_client(store) as c:
        token = add_device(c, "one")
        add_device(c, "two")
        job = run_job(c, "one", token)
        run_job(c, "one", token, scale=2.0)
        running = c.post("/v1/devices/two/jobs", json={"resolution": 32}, headers=bearer(ADMIN)).json()["id"]
        lease = c.post(f"/v1/jobs/{running}/claim", json={"agent": "a", "max_items": 3}, headers=bearer(ADMIN)).json()
        item = lease["items"][0]["item_id"]
        body = {"lease_id": lease["lease_id"], "item_id": item, "error": "export failed: no such op"}
        assert c.post(f"/v1/jobs/{running}/failures", json=body, headers=bearer(ADMIN)).status_code == 200
        before = full_fingerprint(store)
        pages = [
            "/",
            "/jobs",
            f"/jobs/{job}",
            f"/jobs/{running}",
            f"/jobs/{running}/progress",
            f"/devices/one/luts/{job}",
            "/devices/one/luts/latest",
            f"/devices/two/luts/{running}",
            "/devices/one/history",
            "/compare?a=one&b=one&a_lut=" + str(job),
            "/search",
            "/docs",
            "/redoc",
        ]
        for path in pages:
            r = c.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            assert r.headers["content-type"].startswith("text/html")
        assert "export failed: no such op" in c.get(f"/jobs/{running}").text
        assert c.get("/devices/two/luts/latest").status_code == 404
        assert c.get("/compare?a=one&b=ghost").status_code == 404
        assert full_fingerprint(store) == before


@pytest.mark.parametrize("path", ["/jobs/0", "/jobs/notanumber", "/devices/ghost/history"])
def test_bad_page_paths_are_4xx(store: Store, path: str) -> None:
    with make_client(store) as c:
        r = c.get(path)
        assert 400 <= r.status_code < 500


def test_the_lut_page_shows_a_verdict_and_intervals_when_the_tree_has_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14's verdict (``searchspace.intervals.verdict``) and a report's ``intervals``, shown when present."""
    import sys
    import types

    from test_dashboard import _accuracy, table

    from lut_store import crud

    intervals = {
        "within_10": {"share": 1.0, "k": 12, "n": 12, "lower95": 0.78},
        "within_5": {"share": 0.5, "k": 6, "n": 12, "lower95": 0.25},
        "mape": {"value": 5.3, "low": 5.1, "high": 5.5},
        "spearman": {"value": 1.0, "low": 0.98, "high": 1.0},
    }
    fake = types.ModuleType("searchspace.intervals")
    fake.verdict = lambda report, noise: {"level": "rough", "reasons": [f"{report['networks']} networks"]}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "searchspace.intervals", fake)
    with make_client(store) as c:
        token = add_device(c, "alpha")
        job = run_job(c, "alpha", token)
        doc = _accuracy(table("alpha"))
        doc["report"]["intervals"] = {"raw": intervals}
        with store.transaction(write=True) as session:
            crud.set_accuracy(session=session, job=crud.get_job(session=session, job_id=job), document=doc)
        page = c.get(f"/devices/alpha/luts/{job}").text
    assert "Verdict: <strong>rough: 12 networks</strong>" in page
    assert "±10%: 12/12, ≥78%; ±5%: 6/12, ≥25%; MAPE 5.1–5.5; ρ 0.98–1" in page
