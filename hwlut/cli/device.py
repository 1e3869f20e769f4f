"""``hwlut device``: register, list and delete devices on a server, and give one a new token (admin token)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .remote import ServerOpt, TokenOpt, connect

app = typer.Typer(
    help="Devices on an hwlut server (writes need the admin token: --token or HWLUT_ADMIN_TOKEN).",
    no_args_is_help=True,
)
NameArg = Annotated[str, typer.Argument(help="The device's name, e.g. pixel7-cpu-1t.", metavar="NAME")]


def _print_token(name: str, token: str, what: str) -> None:
    """The token as the last line of stdout (for ``| tail -1``); the next step on stderr."""
    typer.echo(f"next: hwlut job create --device {name}; then on the device: hwlut agent --token TOKEN", err=True)
    typer.echo(f"device {name}: {what}. Its token (shown once, only its hash is stored):")
    typer.echo(token)


@app.command("register")
def register(
    name: NameArg,
    server: ServerOpt = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    token: TokenOpt = None,
) -> None:
    """Register a device (admin token); prints its token once (keep it: only its hash is stored).

    Example: hwlut device register pixel7-cpu-1t --description "Pixel 7, big cores"
    """
    with connect(server, token, admin_first=True) as client:
        doc = client.create_device(name, description=description)
    _print_token(name, doc["token"], "registered")


app.command("add", help="Alias of `register`.")(register)


@app.command("token")
def new_token(name: NameArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """A new token for a registered device (admin token); the older ones keep working.

    Example: hwlut device token pixel7-cpu-1t
    """
    with connect(server, token, admin_first=True) as client:
        fresh = client.new_token(name)
    _print_token(name, fresh, "new token")


@app.command("list")
def list_(
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Every device. Example: hwlut device list --json"""
    from rich.table import Table

    from .console import out_console

    with connect(server, token) as client:
        devices = client.devices()
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
def rm(
    name: NameArg,
    server: ServerOpt = None,
    token: TokenOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; needed when not at a terminal.")] = False,
) -> None:
    """Delete a device with its tokens, jobs and LUTs (admin token); asks first unless --yes.

    Example: hwlut device rm old-phone --yes
    """
    import sys

    from .errors import fail

    if not yes:
        if not sys.stdin.isatty():
            fail(f"deleting {name} removes its jobs and LUTs for good; add --yes to confirm")
        typer.confirm(f"Delete device {name} with all its jobs and LUTs?", abort=True)
    with connect(server, token, admin_first=True) as client:
        client.delete_device(name)
    typer.echo(f"device {name} deleted")
