"""``hwlut job``: create a profiling job on a server and follow its progress."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

app = typer.Typer(help="Profiling jobs on an hwlut server.", no_args_is_help=True)
ServerOpt = Annotated[str, typer.Option("--server", envvar="HWLUT_SERVER", help="Server URL.")]


@app.command("create")
def create(
    device: Annotated[str, typer.Option("--device", help="Device name.")],
    server: ServerOpt = "http://127.0.0.1:8000",
    space: Annotated[str, typer.Option(help="Built-in space name or a spec file.")] = "fbnet",
    resolution: Annotated[int | None, typer.Option("--resolution", "-r")] = None,
    runtime: Annotated[str, typer.Option(help="onnxruntime, litert, ...")] = "onnxruntime",
    threads: Annotated[int | None, typer.Option(help="Runtime threads.")] = None,
) -> None:
    """A job whose work items are the space's distinct entries (admin or the device's token)."""
    from hwlut.client import HwlutClient
    from searchspace import BUILTIN_SPACES, load_space

    spec: str | dict = space if space in BUILTIN_SPACES else load_space(space, resolution=resolution).to_dict()
    token = os.environ.get("HWLUT_TOKEN") or os.environ.get("HWLUT_ADMIN_TOKEN")
    with HwlutClient(server, token=token) as client:
        doc = client.create_job(device, space=spec, resolution=resolution, runtime=runtime, threads=threads)
    typer.echo(json.dumps(doc, indent=1))


@app.command("show")
def show(job_id: int, server: ServerOpt = "http://127.0.0.1:8000") -> None:
    """A job's status and progress."""
    from hwlut.client import HwlutClient

    with HwlutClient(server, token=os.environ.get("HWLUT_TOKEN")) as client:
        typer.echo(json.dumps(client.job(job_id), indent=1))
