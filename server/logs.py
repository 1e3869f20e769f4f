"""Structured logs: one JSON object a line, an access log, a request id on every line of a request.

The level comes from ``$HWLUT_LOG_LEVEL`` (``DEBUG``, ``INFO`` (default),
``WARNING``, ``ERROR``). Each request gets an id (the client's
``X-Request-ID`` when it is a short plain token, else a new one), echoed in
the answer's ``X-Request-ID`` header and written on every line logged while
the request runs. The access log (logger ``hwlut.access``) writes, per
request: method, path (never the query string), status, latency in ms, the
device and job the path names, the client's address. Headers are never
logged, so no token reaches a log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LEVEL_ENV", "AccessLog", "JsonFormatter", "configure_logging", "request_extra", "request_id"]

LEVEL_ENV = "HWLUT_LOG_LEVEL"
request_id: ContextVar[str | None] = ContextVar("hwlut_request_id", default=None)
access = logging.getLogger("hwlut.access")
_FIELDS = ("request_id", "method", "path", "status", "latency_ms", "device", "job", "client", "reason")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BEARER_RE = re.compile(r"(?i)bearer\s+\S+")


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: time, level, logger, message, the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _BEARER_RE.sub("Bearer ***", record.getMessage()),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            out["request_id"] = rid
        for name in _FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a line is written (a test's capture, too)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str | None = None) -> None:
    """Send hwlut's loggers to stderr as JSON lines at ``level`` (else ``$HWLUT_LOG_LEVEL``, else INFO); idempotent."""
    name = (level or os.environ.get(LEVEL_ENV) or "INFO").upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"{LEVEL_ENV}={name}: not a log level (DEBUG, INFO, WARNING, ERROR)")
    logger = logging.getLogger("hwlut")
    logger.setLevel(name)
    if not any(getattr(h, "_hwlut", False) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(JsonFormatter())
        handler._hwlut = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def request_extra(request: Any) -> dict[str, Any]:
    """``extra=`` for a log line about ``request`` (its id, method and path), from any handler."""
    return {
        "request_id": getattr(request.state, "request_id", None),
        "method": request.method,
        "path": request.url.path,
    }


def _request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            given = value.decode("latin-1")
            if _ID_RE.match(given):
                return given
    return uuid.uuid4().hex


class AccessLog:
    """One access-log line per HTTP request (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid  # for handlers outside this middleware (a crash's)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            params = scope.get("path_params") or {}
            client = scope.get("client")
            access.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                status,
                extra={
                    "request_id": rid,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "latency_ms": round((time.perf_counter() - start) * 1000, 3),
                    "device": params.get("name"),
                    "job": params.get("job_id") or (params.get("lut") if params.get("lut") != "latest" else None),
                    "client": client[0] if client else None,
                },
            )
            request_id.reset(token)
