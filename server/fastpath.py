"""The hot read, answered before routing: one entry of a LUT this process holds in memory.

``GET /v1/devices/{name}/luts/{lut}/entries/{key}`` is what a search asks
most. When the LUT reference is cached (:meth:`LutCache.peek`), the key is
in the LUT, and the reader is plainly allowed (reads are open, or the bearer
token is the read or admin token, or a device token already checked in this
cache generation), :class:`CachedEntries` sends the pre-rendered answer
itself: the very bytes and headers the FastAPI route sends, without routing,
dependency solving or a database session. Anything else (a miss, an unknown
key, a refusal, any other method or path) goes on to the app, whose route
stays the one definition of the endpoint and of its errors.
"""

from __future__ import annotations

from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from lut_store.errors import StoreError

from .auth import known_reader
from .cache import LutCache
from .settings import Settings

__all__ = ["CachedEntries"]


def plainly_allowed(settings: Settings, cache: LutCache, authorization: str | None) -> bool:
    """Whether a read is allowed without asking the database (``False``: let the app decide)."""
    if settings.read_token is None:
        return True
    if not authorization:
        return False
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        return False
    return known_reader(settings, cache, token)


class CachedEntries:
    """ASGI middleware answering cached single-entry reads (see the module's docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, cache: LutCache) -> None:
        self.app = app
        self.settings = settings
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            body = self._answer(scope)
            if body is not None:
                headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> bytes | None:
        parts = scope["path"].split("/")
        # ["", "v1", "devices", name, "luts", lut, "entries", key]
        if len(parts) != 8 or parts[1:3] != ["v1", "devices"] or parts[4] != "luts" or parts[6] != "entries":
            return None
        name, lut, key = parts[3], parts[5], parts[7]
        if not (name and lut and key):
            return None
        cached = self.cache.peek(name, lut)
        if cached is None:
            return None
        authorization = None
        if self.settings.read_token is not None:
            for header, value in scope["headers"]:
                if header == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            if not plainly_allowed(self.settings, self.cache, authorization):
                return None
        try:
            return cached.entry_json(key)
        except StoreError:
            return None
