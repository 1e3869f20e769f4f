"""Structured logs: JSON lines, an access line per request with its id, device, job and latency; no token, ever."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from test_server import ADMIN, add_device, bearer, make_client

from lut_store import Store
from server.logs import JsonFormatter, configure_logging


def test_access_log_lines_carry_the_request_and_never_a_token(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with make_client(store) as c, caplog.at_level(logging.INFO, logger="hwlut"):
        token = add_device(c, "logged")
        job = c.post("/v1/devices/logged/jobs", json={"resolution": 32}, headers=bearer(token)).json()["id"]
        r = c.post(f"/v1/jobs/{job}/claim", json={"agent": "a", "max_items": 1}, headers=bearer(token))
        assert r.status_code == 200
        c.get(f"/v1/whoami?token={token}")  # a token in a query string: refused, and the query never logged
        c.get("/v1/whoami", headers=bearer("not-a-token-" + ADMIN))
        r = c.get("/health", headers={"X-Request-ID": "trace-42"})
        assert r.headers["x-request-id"] == "trace-42"
    lines = [JsonFormatter().format(rec) for rec in caplog.records]
    for line in lines:
        assert token not in line and ADMIN not in line, line
    access = [json.loads(line) for line in lines if '"hwlut.access"' in line]
    claim = next(a for a in access if a["path"].endswith("/claim"))
    assert claim["status"] == 200 and claim["job"] == str(job) and claim["latency_ms"] >= 0
    assert claim["method"] == "POST" and len(claim["request_id"]) == 32
    assert next(a for a in access if a["path"] == "/v1/devices/logged/jobs")["device"] == "logged"
    assert any(a.get("request_id") == "trace-42" for a in access)
    assert all("?" not in a["path"] for a in access)


def test_level_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("hwlut")
    before = logger.level
    try:
        monkeypatch.setenv("HWLUT_LOG_LEVEL", "warning")
        configure_logging()
        assert logger.level == logging.WARNING and not logging.getLogger("hwlut.access").isEnabledFor(logging.INFO)
        monkeypatch.setenv("HWLUT_LOG_LEVEL", "loud")
        with pytest.raises(ValueError, match="HWLUT_LOG_LEVEL"):
            configure_logging()
    finally:
        logger.setLevel(before)


def test_a_crash_is_logged_with_its_request_id(store: Store, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from lut_store import crud

    monkeypatch.setattr(crud, "list_devices", lambda **_kw: 1 / 0)
    with TestClient(make_client(store).app, raise_server_exceptions=False) as c, caplog.at_level(logging.ERROR):
        r = c.get("/v1/devices", headers={"X-Request-ID": "crash-1"})
    assert r.status_code == 500
    crash = next(rec for rec in caplog.records if rec.levelno == logging.ERROR)
    line = json.loads(JsonFormatter().format(crash))
    assert line["request_id"] == "crash-1" and "ZeroDivisionError" in line["error"]
