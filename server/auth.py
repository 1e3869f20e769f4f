"""Token checks shared by the dependencies (:mod:`server.deps`) and the fast path (:mod:`server.fastpath`).

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

from .cache import LutCache
from .settings import Settings

__all__ = ["known_reader", "same_token"]


def same_token(given: str, expected: str | None) -> bool:
    """Whether ``given`` is the configured token ``expected`` (never, when none is configured)."""
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def known_reader(settings: Settings, cache: LutCache, token: str) -> bool:
    """Whether ``token`` may read without asking the database.

    The read token, the admin token, or a device token already checked in this
    cache generation; ``False`` leaves the database to decide.
    """
    return same_token(token, settings.read_token) or same_token(token, settings.admin_token) or cache.token_known(token)
