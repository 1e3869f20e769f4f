"""``hwlut lut`` (import, show, export, get) and ``hwlut query`` (ask a server)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from .lutshow import show

app = typer.Typer(help="LUT files: import into the database, export, download from a server.", no_args_is_help=True)
query_app = typer.Typer(help="Ask a server for latencies (µs).", no_args_is_help=True)
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: $HWLUT_DATABASE_URL).")]
ServerOpt = Annotated[str, typer.Option("--server", envvar="HWLUT_SERVER", help="Server URL.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Device name.")]
FORMAT_HELP = "hwlut (JSON, µs), csv (µs), hwnasbench, proxyless, ofa (ms)"


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A LUT file in any format.")],
    device: DeviceOpt,
    db: DbOpt = None,
    format: Annotated[str | None, typer.Option(help=f"{FORMAT_HELP}; guessed when absent.")] = None,
    space: Annotated[str | None, typer.Option(help="Space of a foreign table (name or spec file).")] = None,
    resolution: Annotated[int | None, typer.Option("--resolution", "-r")] = None,
) -> None:
    """Store a LUT file as the device's LUT (the device is created when new)."""
    from lut_store import FormatError, Store, crud, read_table
    from searchspace import load_space

    try:
        table = read_table(file.read_text(), format, filename=file.name)
    except FormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    spec = load_space(space, resolution=resolution) if space else None
    store = Store(db)
    store.check_schema()
    with store.transaction(write=True) as session:
        try:
            dev = crud.get_device(session=session, name=device)
        except crud.NotFound:
            dev, _token = crud.create_device(session=session, name=device)
            typer.echo(f"device {device} created (make a token with the server: POST /v1/devices/{device}/tokens)")
        job = crud.import_table(session=session, device=dev, table=table, space=spec)
        job_id = job.id
    unmapped = len(table.unmapped())
    typer.echo(
        f"LUT {job_id} of {device}: {len(table.rows)} entries from a {table.format} table"
        + (f" ({unmapped} are no hwlut op and keep their original keys)" if unmapped else "")
    )


app.command("show")(show)


@app.command("export")
def export(
    device: DeviceOpt,
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    db: DbOpt = None,
    lut: Annotated[str, typer.Option(help="Job id or 'latest'.")] = "latest",
    format: Annotated[str, typer.Option(help=FORMAT_HELP)] = "hwlut",
) -> None:
    """Write one of the device's LUTs to a file."""
    from lut_store import FormatError, Store, crud, write_table

    store = Store(db)
    store.check_schema()
    with store.transaction() as session:
        try:
            snap = crud.lut_snapshot(session=session, job=crud.resolve_lut(session=session, device=device, ref=lut))
        except crud.StoreError as exc:
            raise typer.BadParameter(str(exc)) from None
    try:
        text, left_out = write_table(crud.snapshot_table(snap), format)
    except FormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="--format") from None
    out.write_text(text)
    typer.echo(f"{out}: {len(snap.rows) - len(left_out)} entries ({format})")
    if left_out:
        typer.echo(f"warning: {len(left_out)} entries have no {format} name and were left out", err=True)


@app.command("get")
def get(
    device: DeviceOpt,
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    server: ServerOpt = "http://127.0.0.1:8000",
    job: Annotated[str, typer.Option("--job", help="Job id (default: the newest complete LUT).")] = "latest",
    format: Annotated[str, typer.Option(help=FORMAT_HELP)] = "hwlut",
) -> None:
    """Download a device's LUT from a server."""
    from lutclient import HwlutClient

    with HwlutClient(server, token=os.environ.get("HWLUT_TOKEN")) as client:
        text = client.lut_text(device, job, format=format)
    out.write_text(text)
    typer.echo(f"{out}: LUT of {device} ({format})")


@query_app.command("entry")
def query_entry(
    key: Annotated[str, typer.Argument(help="An entry key in any rendering.")],
    device: DeviceOpt,
    server: ServerOpt = "http://127.0.0.1:8000",
    lut: Annotated[str, typer.Option(help="Job id or 'latest'.")] = "latest",
) -> None:
    """One entry's latency (µs) and statistics."""
    from lutclient import HwlutClient

    with HwlutClient(server, token=os.environ.get("HWLUT_TOKEN")) as client:
        typer.echo(json.dumps(client.entry(device, key, lut=lut), indent=1))


@query_app.command("arch")
def query_arch(
    arch: Annotated[str, typer.Argument(help="Candidate names joined by commas, one per searchable layer.")],
    device: DeviceOpt,
    server: ServerOpt = "http://127.0.0.1:8000",
    lut: Annotated[str, typer.Option(help="Job id or 'latest'.")] = "latest",
) -> None:
    """An architecture's LUT sum (µs), layer by layer."""
    from lutclient import HwlutClient

    with HwlutClient(server, token=os.environ.get("HWLUT_TOKEN")) as client:
        typer.echo(json.dumps(client.architecture_latency(device, arch, lut=lut), indent=1))
