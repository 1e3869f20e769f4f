"""``hwlut device``: register, list and delete devices on a server (admin token)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

app = typer.Typer(help="Devices on an hwlut server (writes need HWLUT_ADMIN_TOKEN).", no_args_is_help=True)
ServerOpt = Annotated[str, typer.Option("--server", envvar="HWLUT_SERVER", help="Server URL.")]


def _client(server: str, token: str | None = None):
    from hwlut.client import HwlutClient

    return HwlutClient(server, token=token or os.environ.get("HWLUT_ADMIN_TOKEN") or os.environ.get("HWLUT_TOKEN"))


@app.command("add")
def add(
    name: str,
    server: ServerOpt = "http://127.0.0.1:8000",
    description: Annotated[str, typer.Option(help="Free text.")] = "",
) -> None:
    """Register a device; prints its token once (keep it: only its hash is stored)."""
    with _client(server) as client:
        doc = client.create_device(name, description=description)
    typer.echo(f"device {name} registered. Its token (shown once):\n{doc['token']}")


@app.command("list")
def list_(server: ServerOpt = "http://127.0.0.1:8000") -> None:
    """Every device, as JSON lines."""
    with _client(server) as client:
        for device in client.devices():
            typer.echo(json.dumps(device))


@app.command("rm")
def rm(name: str, server: ServerOpt = "http://127.0.0.1:8000") -> None:
    """Delete a device and all its LUTs."""
    with _client(server) as client:
        client.delete_device(name)
    typer.echo(f"device {name} deleted")
