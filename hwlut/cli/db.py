"""``hwlut db``: create or upgrade the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="The LUT database: create, upgrade, show its schema revision.", no_args_is_help=True)
DbOpt = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL (default: $HWLUT_DATABASE_URL, else SQLite in HWLUT_HOME).")
]


@app.command("upgrade")
def upgrade(db: DbOpt = None) -> None:
    """Create the database, or bring its schema to this hwlut's revision.

    Example: hwlut db upgrade --db postgresql+psycopg://hwlut@localhost/hwlut
    """
    from lut_store import Store

    store = Store(db)
    revision = store.upgrade()
    typer.echo(f"{store.url}: schema at revision {revision}")
    store.dispose()


@app.command("current")
def current(db: DbOpt = None) -> None:
    """The database's schema revision and the one this hwlut needs. Example: hwlut db current"""
    from lut_store import Store, current_revision, head_revision

    store = Store(db)
    typer.echo(f"{store.url}: revision {current_revision(store.engine) or 'none'} (this hwlut needs {head_revision()})")
    store.dispose()
