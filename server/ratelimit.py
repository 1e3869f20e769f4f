"""Upload rate limits: each token (or client address) may send at most ``rate`` uploads a second, in bursts.

A token bucket per caller, per worker process, over ``POST /v1/jobs/{id}/results``
and ``/failures``: an upload beyond the bucket is answered 429 with
``Retry-After`` and a message that says the limit. ``rate`` 0 turns it off.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import problem

__all__ = ["UploadRateLimit"]

_LIMITED = ("/results", "/failures")


class UploadRateLimit:
    """ASGI middleware: a token bucket of ``burst`` uploads refilled at ``rate`` a second, per caller."""

    def __init__(
        self, app: ASGIApp, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.rate = rate
        self.burst = burst if burst is not None else max(1, math.ceil(2 * rate))
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _caller(self, scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                return hashlib.sha256(value).hexdigest()  # the token itself is never kept
        client = scope.get("client")
        return f"addr:{client[0] if client else '?'}"

    def _take(self, caller: str) -> float:
        """0 when the caller may go on, else the seconds until it may."""
        now = self.clock()
        level, last = self._buckets.pop(caller, (float(self.burst), now))
        level = min(float(self.burst), level + (now - last) * self.rate)
        wait = 0.0 if level >= 1 else (1 - level) / self.rate
        self._buckets[caller] = (level - 1 if wait == 0 else level, now)
        while len(self._buckets) > 10_000:  # forget the oldest callers
            self._buckets.popitem(last=False)
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.rate > 0
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/v1/jobs/")
            and scope["path"].endswith(_LIMITED)
        ):
            wait = self._take(self._caller(scope))
            if wait > 0:
                msg = f"too many uploads: at most {self.rate:g} a second (bursts of {self.burst}) per token; retry"
                response = problem(429, ["header", "authorization"], msg, "rate_limited")
                response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
