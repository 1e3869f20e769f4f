"""``OPTIONS`` and ``405`` say every method a path allows (Starlette's router names only the first route's).

The methods come from the app's OpenAPI schema, which lists every route:
``OPTIONS`` is answered 204 with ``Allow``; a 405's ``Allow`` is corrected.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AllowedMethods"]


class AllowedMethods:
    """ASGI middleware: a truthful ``Allow`` header (see the module's docstring)."""

    def __init__(self, app: ASGIApp, api: Any) -> None:
        self.app = app
        self.api = api  # the FastAPI app, for its schema
        self._paths: list[tuple[re.Pattern[str], str]] | None = None

    def allowed(self, path: str) -> str | None:
        """``"GET, POST, OPTIONS"`` for a path of the API, ``None`` for no path of it."""
        if self._paths is None:
            self._paths = []
            for template, item in self.api.openapi().get("paths", {}).items():
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
                methods = sorted(m.upper() for m in item if m.lower() in {"get", "post", "put", "patch", "delete"})
                self._paths.append((re.compile(f"^{pattern}$"), ", ".join([*methods, "OPTIONS"])))
        found = [allow for pattern, allow in self._paths if pattern.match(path)]
        if not found:
            return None
        methods = sorted({m for allow in found for m in allow.split(", ")} - {"OPTIONS"})
        return ", ".join([*methods, "OPTIONS"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allow = self.allowed(scope["path"])
        if allow is not None and scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow.encode())]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405 and allow is not None:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", allow.encode())]
            await send(message)

        await self.app(scope, receive, send_allow)
