"""``hwlut serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: $HWLUT_DATABASE_URL).")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes (use PostgreSQL beyond 1).")] = 1,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Apply the database's migrations first (as `hwlut db upgrade`).")
    ] = False,
) -> None:
    """Serve devices, jobs, the agent protocol and LUT queries (latencies in µs).

    A database that cannot be opened (unreachable, unwritable, a schema
    behind) stops the command with one line saying why, exit status 2.

    Example: HWLUT_ADMIN_TOKEN=… hwlut serve --host 0.0.0.0 --port 8000
    """
    import os

    import uvicorn
    from sqlalchemy.exc import DBAPIError

    from lut_store import SchemaBehind, Store
    from server.health import classify
    from server.settings import ConfigError, get_settings

    try:
        settings = get_settings()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if db:
        os.environ["HWLUT_DATABASE_URL"] = db  # so every worker process sees it
        settings = dataclasses.replace(settings, database_url=db)
    store = None
    try:
        store = Store(settings.database_url)
        if upgrade:
            store.upgrade()
        store.check_schema()
    except SchemaBehind as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # any failure to open the database: one line, no traceback
        where = store.url if store is not None else "(its URL is not valid)"
        said = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = f"{classify(exc)[0]} ({said})" if isinstance(exc, OSError | DBAPIError) else said
        typer.echo(f"error: cannot open the database {where}: {reason}", err=True)
        raise typer.Exit(2) from None
    store.dispose()
    if settings.admin_token is None:
        typer.echo(
            "note: no admin token set, so every write is refused. Set one, e.g.\n"
            "  export HWLUT_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
            err=True,
        )
    typer.echo(f"hwlut server on http://{host}:{port} (database {store.url})", err=True)
    uvicorn.run("server.asgi:app", host=host, port=port, workers=workers, access_log=False, log_level="info")
