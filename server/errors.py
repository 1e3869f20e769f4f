"""Error answers: every refusal is ``{"detail": [{"loc", "msg", "type"}]}`` naming the field."""

from __future__ import annotations

import errno
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lut_store.errors import StoreError

from .logs import request_extra

__all__ = [
    "ApiError",
    "BodySizeLimit",
    "body_loc",
    "database_fault",
    "document_body_limit",
    "install_error_handlers",
    "problem",
    "store_loc",
]

log = logging.getLogger("hwlut.server")
#: OS errors of the database's storage (a full disk, a read-only filesystem): 503, not a crash.
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)


def problem(status: int, loc: list[str | int], msg: str, kind: str) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": kind}]}, status_code=status)


def body_loc(field: str) -> list[str | int]:
    """A store error's field (``validation.archs[2]``) as the location of a body field.

    ``["body", "validation", "archs", 2]``: the form request validation uses.
    """
    loc: list[str | int] = ["body"]
    for part in field.split("."):
        name, *indices = re.split(r"\[(\d+)\]", part)
        loc.append(name)
        loc.extend(int(i) for i in indices if i)
    return loc


class ApiError(Exception):
    """Raised by dependencies and routes; answered as :func:`problem`."""

    def __init__(
        self, status: int, loc: list[str | int], msg: str, kind: str = "invalid", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(msg)
        self.status, self.loc, self.msg, self.kind, self.headers = status, loc, msg, kind, headers


_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 409: "conflict", 422: "invalid"}


def install_error_handlers(app: FastAPI) -> None:
    """Map hwlut's exceptions to 4xx JSON answers."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        response = problem(exc.status, exc.loc, exc.msg, exc.kind)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the input: it may be NaN (not JSON), huge, or a secret.
        problems = [
            {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", "invalid"))}
            for err in exc.errors()
        ]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals: a body it cannot parse (400, answered as the 422 of any bad body),
        # an unknown path (404), a method the path lacks (405).
        if exc.status_code == 400:
            return problem(422, ["body"], str(exc.detail), "json_invalid")
        response = problem(exc.status_code, [], str(exc.detail), _KINDS.get(exc.status_code, "http_error"))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        return problem(exc.status, store_loc(request, exc.field), exc.message, _KINDS.get(exc.status, "invalid"))

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, _exc: IntegrityError) -> JSONResponse:
        return problem(409, ["body"], "the request conflicts with stored data (a concurrent write?)", "conflict")

    @app.exception_handler(DataError)
    async def _unstorable(_request: Request, _exc: DataError) -> JSONResponse:
        return problem(422, ["body"], "a value does not fit the database's columns", "invalid")

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> JSONResponse:
        return database_fault(request, exc)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        # a full disk or a read-only filesystem under the database: a fault to report, not a crash
        if exc.errno in _STORAGE_ERRNOS:
            return database_fault(request, exc)
        return _internal(request)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError):
            return database_fault(request, exc)
        return _internal(request)


def _internal(request: Request) -> JSONResponse:
    """A JSON 500 for an unexpected error, logged with its traceback and the request's id."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, extra=request_extra(request))
    return problem(500, [], "internal server error (logged on the server)", "internal")


#: The store's name of a thing a path names: a device (``{name}``), a LUT's job (``{lut}``).
_PATH_ALIASES = {"device": "name", "job_id": "lut"}


def store_loc(request: Request, field: str) -> list[str | int]:
    """A store error's field as a location: ``["path", "lut"]`` for a path parameter, else ``body_loc``.

    One shape for every refusal: ``["body", "results", 0, "stats", "median"]``.
    """
    loc = body_loc(field)
    head = loc[1]
    alias = _PATH_ALIASES.get(str(head))
    if head not in request.path_params and alias in request.path_params:
        return ["path", alias]
    if head in request.path_params:
        return ["path", *loc[1:]]
    if head in request.query_params:
        return ["query", *loc[1:]]
    return loc


def database_fault(request: Request, exc: BaseException) -> JSONResponse:
    """503 with the reason (read-only, disk full, unreachable, busy), logged; a lasting one fails ``/ready``."""
    from .health import classify

    reason, lasting = classify(exc, request.app.state.store.engine.url)
    if lasting:
        request.app.state.faults.record(reason)
    log.error(
        "database fault on %s %s: %s (%s)",
        request.method,
        request.url.path,
        reason,
        type(exc).__name__,
        extra={**request_extra(request), "reason": reason},
    )
    response = problem(503, ["database"], reason, "unavailable")
    response.headers["Retry-After"] = "5"
    return response


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before reading them all."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        too_big = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal seen, too_big
            if too_big:  # the app reads on: give it an end of body, its answer is replaced anyway
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if not too_big:
                await send(message)
            elif not replaced and message["type"] == "http.response.start":
                replaced = True
                await self._refuse(scope, receive, send)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, ["body"], f"request body larger than {self.max_bytes} bytes", "too_large")
        await response(scope, receive, send)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the error codes a route may answer."""
    from .schemas import ErrorResponse

    return {code: {"model": ErrorResponse} for code in codes}


def document_body_limit(app: FastAPI) -> None:
    """Say in the OpenAPI schema that every operation with a body may answer 413 (:class:`BodySizeLimit`)."""
    from .schemas import ErrorResponse

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            ref = {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}
            for item in schema.get("paths", {}).values():
                for op in item.values():
                    if isinstance(op, dict) and "requestBody" in op:
                        op.setdefault("responses", {}).setdefault(
                            "413",
                            {"description": "Request body too large", "content": {"application/json": {"schema": ref}}},
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
