"""``hwlut device``: register, list and delete devices on a server (admin token)."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

app = typer.Typer(help="Devices on an hwlut server (writes need HWLUT_ADMIN_TOKEN).", no_args_is_help=True)
ServerOpt = Annotated[str, typer.Option("--server", envvar="HWLUT_SERVER", help="Server URL.")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", help="Admin token (default: $HWLUT_ADMIN_TOKEN).", show_default=False)
]


def _client(server: str, token: str | None = None) -> Any:
    from lutclient import HwlutClient

    return HwlutClient(server, token=token or os.environ.get("HWLUT_ADMIN_TOKEN") or os.environ.get("HWLUT_TOKEN"))


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command("register")
def register(
    name: str,
    server: ServerOpt = "http://127.0.0.1:8000",
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    token: TokenOpt = None,
) -> None:
    """Register a device (admin token); prints its token once (keep it: only its hash is stored)."""
    from lutclient import HwlutError

    try:
        with _client(server, token) as client:
            doc = client.create_device(name, description=description)
    except HwlutError as exc:
        raise _fail(exc) from None
    typer.echo(f"device {name} registered. Its token (shown once, give it to the agent with --token):")
    typer.echo(doc["token"])


app.command("add", help="Alias of `register`.")(register)


@app.command("list")
def list_(
    server: ServerOpt = "http://127.0.0.1:8000",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Every device."""
    from rich.table import Table

    from lutclient import HwlutError

    from .console import out_console

    try:
        with _client(server) as client:
            devices = client.devices()
    except HwlutError as exc:
        raise _fail(exc) from None
    if as_json:
        for device in devices:
            typer.echo(json.dumps(device))
        return
    table = Table("name", "description", "hardware", "registered")
    for d in devices:
        hw = ", ".join(f"{k}={v}" for k, v in (d.get("hardware") or {}).items())
        table.add_row(d["name"], d.get("description") or "", hw, str(d.get("created_at", ""))[:19])
    out_console().print(table)


@app.command("rm")
def rm(name: str, server: ServerOpt = "http://127.0.0.1:8000", token: TokenOpt = None) -> None:
    """Delete a device and all its LUTs."""
    from lutclient import HwlutError

    try:
        with _client(server, token) as client:
            client.delete_device(name)
    except HwlutError as exc:
        raise _fail(exc) from None
    typer.echo(f"device {name} deleted")
