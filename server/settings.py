"""Server settings, read from the environment once per process (see :func:`get_settings`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Settings", "get_settings"]


@dataclass(frozen=True)
class Settings:
    """What the server needs to know; tokens are secrets and never printed (``repr`` hides them)."""

    database_url: str | None = None
    admin_token: str | None = None
    read_token: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 10_000

    def __repr__(self) -> str:
        hidden = {k: ("***" if getattr(self, k) else None) for k in ("admin_token", "read_token")}
        return (
            f"Settings(database_url={self.database_url!r}, admin_token={hidden['admin_token']}, "
            f"read_token={hidden['read_token']}, max_body_bytes={self.max_body_bytes})"
        )

    @classmethod
    def from_env(cls) -> Settings:
        """``HWLUT_DATABASE_URL``, ``HWLUT_ADMIN_TOKEN``, ``HWLUT_READ_TOKEN``, ``HWLUT_MAX_BODY_BYTES``."""
        return cls(
            database_url=os.environ.get("HWLUT_DATABASE_URL") or None,
            admin_token=os.environ.get("HWLUT_ADMIN_TOKEN") or None,
            read_token=os.environ.get("HWLUT_READ_TOKEN") or None,
            max_body_bytes=int(os.environ.get("HWLUT_MAX_BODY_BYTES", 8 * 1024 * 1024)),
        )


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached; tests pass their own to ``create_app``)."""
    return Settings.from_env()
