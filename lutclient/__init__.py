"""The HTTP client of the hwlut server: what the agent, the searcher and the CLI share.

Needs httpx and :mod:`searchspace` only (no torch, no server code); the
server needs nothing of it. See :mod:`lutclient.client`.
"""

from .client import (
    DEFAULT_TIMEOUT,
    ApiError,
    Conflict,
    HwlutClient,
    HwlutError,
    Invalid,
    Lease,
    NotFound,
    ServerUnreachable,
    Unauthorized,
    WorkItem,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiError",
    "Conflict",
    "HwlutClient",
    "HwlutError",
    "Invalid",
    "Lease",
    "NotFound",
    "ServerUnreachable",
    "Unauthorized",
    "WorkItem",
]
