"""Fresh databases for tests: SQLite files and (when configured) PostgreSQL.

``HWLUT_TEST_POSTGRES_URL`` names a PostgreSQL database that tests may wipe.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from .db import Store, make_engine

__all__ = ["POSTGRES_ENV", "empty_store", "postgres_url"]

POSTGRES_ENV = "HWLUT_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    """The PostgreSQL URL tests may wipe, or ``None``."""
    return os.environ.get(POSTGRES_ENV) or None


def empty_store(kind: str, tmp_path: Path) -> Store:
    """A store on an empty database (no schema): a SQLite file under ``tmp_path``, or PostgreSQL wiped clean."""
    if kind == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'hwlut.db'}")
    url = postgres_url()
    if url is None:
        raise RuntimeError(f"{POSTGRES_ENV} is not set")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    return Store(engine=engine)
