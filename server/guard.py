"""Hostile input refused at the door, before a route sees it: the same on SQLite and PostgreSQL.

* :func:`safe_body` (an app-wide dependency): every value of a JSON body
  passes :func:`lut_store.guard.check_value` (no NUL byte, no lone surrogate,
  no NaN or infinity, integers within ±2^53, nesting at most 32 levels),
  else 422 at ``["body", ...]``;
* :class:`SafeTarget`: a path or query string holding a NUL byte is 422 at
  ``["path"]`` / ``["query", name]`` (PostgreSQL refuses NUL in any text it
  compares).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lut_store.guard import ValueProblem, check_text, check_value

from .errors import ApiError, problem

__all__ = ["SafeTarget", "safe_body"]

_BODY_METHODS = {"POST", "PUT", "PATCH"}


async def safe_body(request: Request) -> None:
    """Refuse a JSON body holding a value no database stores faithfully (422 naming the field)."""
    if request.method not in _BODY_METHODS or "json" not in request.headers.get("content-type", "json"):
        return
    try:
        body = await request.json()  # parsed once: FastAPI already read it, Starlette keeps it
    except Exception:
        return
    try:
        check_value(body)
    except ValueProblem as exc:
        raise ApiError(422, ["body", *exc.path], exc.message, "value_error") from None


class SafeTarget:
    """Answer 422 for a request whose path or query string holds a NUL byte or a lone surrogate."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            loc: list[str | int] | None = None
            message = ""
            try:
                check_text(scope.get("path", ""), ["path"])
                for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
                    loc = ["query", name if "\x00" not in name else "?"]
                    check_text(name, loc)
                    check_text(value, loc)
                loc = None
            except ValueProblem as exc:
                loc = loc or ["path"]
                message = exc.message
            if loc is not None:
                await problem(422, loc, message, "value_error")(scope, receive, send)
                return
        await self.app(scope, receive, send)
