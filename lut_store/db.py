"""Engines, sessions and the schema version of hwlut's database.

SQLite is the default: a file ``hwlut.db`` under hwlut's home, opened in WAL
mode with foreign keys on. Any SQLAlchemy URL is accepted instead, from the
caller (``--db``) or ``$HWLUT_DATABASE_URL``; PostgreSQL is tested.

On SQLite, a write transaction starts with ``BEGIN IMMEDIATE`` (it takes the
write lock before it reads), so two concurrent writers queue on the busy
timeout instead of failing on a stale snapshot; read transactions stay
deferred and never block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from .guard import install_flush_guard

__all__ = [
    "DATABASE_URL_ENV",
    "SchemaBehind",
    "Store",
    "current_revision",
    "database_url",
    "head_revision",
    "make_engine",
    "upgrade",
]

DATABASE_URL_ENV = "HWLUT_DATABASE_URL"
_MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaBehind(RuntimeError):
    """The database's schema is older than this hwlut's (or absent); the message says the fix."""


def database_url(url: str | None = None) -> str:
    """``url``, else ``$HWLUT_DATABASE_URL``, else SQLite in hwlut's home."""
    if url:
        return url
    env = os.environ.get(DATABASE_URL_ENV)
    if env:
        return env
    from searchspace.paths import hwlut_home

    return f"sqlite:///{hwlut_home() / 'hwlut.db'}"


def _sqlite_setup(engine: Engine, *, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get("hwlut_write") else "BEGIN"
        conn.exec_driver_sql(mode)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see :func:`database_url`), with SQLite's pragmas set."""
    url = database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    memory = parsed.database in (None, "", ":memory:")
    if not memory:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"check_same_thread": False, "timeout": 30}
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    _sqlite_setup(engine, memory=memory)
    return engine


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


@cache
def head_revision() -> str:
    """The newest migration this hwlut ships."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's migration revision (``None`` when it has none: empty or not hwlut's)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Create or upgrade the schema to ``revision``; returns the revision reached."""
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(engine) or ""


def _redact(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class Store:
    """A database: its engine and a session per transaction (read or write)."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(hwlut_write=True), expire_on_commit=False)
        for factory in (self._read, self._write):
            install_flush_guard(factory)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return _redact(self.engine)

    def check_schema(self) -> str:
        """The revision, or :class:`SchemaBehind` saying which command fixes the database."""
        current, head = current_revision(self.engine), head_revision()
        if current != head:
            state = "has no hwlut schema" if current is None else f"is at schema revision {current}"
            raise SchemaBehind(
                f"the database {self.url} {state}; this hwlut needs {head}. "
                f"Run `hwlut db upgrade --db '{self.url}'` (or with HWLUT_DATABASE_URL set) first."
            )
        return current

    def upgrade(self) -> str:
        """Bring the schema to head."""
        return upgrade(self.engine)

    def session(self, *, write: bool = False) -> Session:
        """A new session; on SQLite a write session takes the write lock when it begins."""
        return (self._write if write else self._read)()

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        with self.session(write=write) as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
