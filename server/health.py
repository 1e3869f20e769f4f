"""Liveness, readiness and database faults told apart.

``/health`` says the process is up; ``/ready`` that the database answers, its
schema is current and the last write did not fail for a lasting reason (a
read-only database, a full disk) within :data:`FAULT_MEMORY_S`. A database
fault is answered 503 with its reason (:func:`classify`) and logged.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import make_url

from lut_store import head_revision

from .schemas import Health

__all__ = ["FAULT_MEMORY_S", "Faults", "classify", "router"]

log = logging.getLogger("hwlut.server")
FAULT_MEMORY_S = 30.0

#: (what the database's message says, the reason told to clients, whether it fails /ready for a while)
_KINDS = (
    (("readonly database", "read-only file system", "read only"), "the database is read-only", True),
    (("disk is full", "no space left", "disk full", "could not extend file"), "the disk of the database is full", True),
    (("database is locked", "busy", "could not obtain lock"), "the database is busy; retry", False),
    (
        ("connection", "could not connect", "server closed", "terminating", "timeout", "unable to open"),
        "the database is unreachable; retry",
        False,  # /ready probes the database itself: it recovers as soon as the database answers
    ),
)


def classify(exc: BaseException, url: Any = None) -> tuple[str, bool]:
    """What a database error means for a client: its reason, and whether it lasts beyond a retry.

    With the database's ``url``, a SQLite file whose folder cannot be written is read-only
    (SQLite then says only that it is ``unable to open database file``).
    """
    if url is not None and _sqlite_unwritable(url):
        return "the database is read-only", True
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk of the database is full", True
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES):
        return "the database is read-only", True
    message = str(getattr(exc, "orig", None) or exc).lower()
    for needles, reason, lasting in _KINDS:
        if any(n in message for n in needles):
            return reason, lasting
    return "the database failed; retry", False


@dataclass
class Faults:
    """The last lasting database fault this process saw (``/ready`` fails while it is recent)."""

    reason: str | None = None
    at: float = field(default=0.0)

    def record(self, reason: str) -> None:
        """Remember a lasting fault."""
        self.reason, self.at = reason, time.monotonic()

    def recent(self) -> str | None:
        """The fault's reason if it is under :data:`FAULT_MEMORY_S` old."""
        if self.reason is not None and time.monotonic() - self.at < FAULT_MEMORY_S:
            return self.reason
        return None


router = APIRouter(tags=["health"])


@router.get("/health")
@router.get("/v1/health")
def health() -> Health:
    """Liveness (the process answers) and the schema revision this server speaks."""
    return Health(schema_revision=head_revision())


def _sqlite_unwritable(url: Any) -> str | None:
    parsed = make_url(str(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = os.path.abspath(parsed.database)
    for target in (path, os.path.dirname(path)):
        if os.path.exists(target) and not os.access(target, os.W_OK):
            return f"the database is read-only ({os.path.basename(target) or target} is not writable)"
    return None


@router.get(
    "/ready",
    responses={503: {"description": "not ready: the reason", "content": {"application/json": {}}}},
)
def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers, its schema is current and writes succeed; 503 with the reason otherwise."""
    store = request.app.state.store
    faults: Faults = request.app.state.faults
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = store.check_schema()
    except Exception as exc:
        reason, _ = classify(exc, store.engine.url)
        if "schema" in str(exc).lower():
            reason = str(exc).split(". Run")[0]
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    reason = _sqlite_unwritable(store.engine.url) or faults.recent()
    if reason:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready", "schema_revision": revision})
