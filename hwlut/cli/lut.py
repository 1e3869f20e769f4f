"""``hwlut lut`` (import, show, export, get) and ``hwlut query`` (ask a server).

One vocabulary: ``--lut`` is a file; a LUT on a server or in the database is
``--job ID|latest``. ``--out -`` writes to standard output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import EXIT_INCOMPLETE, fail
from .lutshow import show
from .options import LUT_FORMATS, choices
from .remote import JobRefOpt, ServerOpt, TokenOpt, connect

app = typer.Typer(
    help="LUT files: import into the database, show, export, download from a server.", no_args_is_help=True
)
query_app = typer.Typer(help="Ask a server for latencies (a table in ms; --json: µs).", no_args_is_help=True)
DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: $HWLUT_DATABASE_URL).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Device name.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="File to write; - for standard output.")]
FORMAT_HELP = f"{', '.join(LUT_FORMATS)} (hwlut: JSON in µs; csv: µs; the others: ms)"
FormatOpt = Annotated[str, typer.Option(help=FORMAT_HELP, autocompletion=choices(LUT_FORMATS), metavar="FORMAT")]


def _write(out: Path, text: str) -> bool:
    """Write ``text`` to ``out`` (``-``: standard output); True when it went to a file."""
    if str(out) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return True


def _check_format(format: str | None) -> None:
    if format is not None and format not in LUT_FORMATS:
        raise typer.BadParameter(f"unknown format {format!r}; known: {', '.join(LUT_FORMATS)}", param_hint="--format")


def _open_store(db: str | None, *, create: bool = False) -> Any:
    """The database; a fresh one (no schema at all) gets its schema when ``create`` (a write), with a note."""
    from lut_store import Store, current_revision

    store = Store(db)
    if create and current_revision(store.engine) is None:
        typer.echo(f"note: {store.url} had no hwlut schema; creating it (as hwlut db upgrade does)", err=True)
        store.upgrade()
    store.check_schema()
    return store


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A LUT file in any format.", metavar="FILE")
    ],
    device: DeviceOpt,
    db: DbOpt = None,
    format: Annotated[
        str | None,
        typer.Option(
            help=f"{FORMAT_HELP}; guessed when absent.", autocompletion=choices(LUT_FORMATS), metavar="FORMAT"
        ),
    ] = None,
    space: Annotated[str | None, typer.Option(help="Space of a foreign table (name or spec file).")] = None,
    resolution: Annotated[int | None, typer.Option("--resolution", "-r")] = None,
) -> None:
    """Store a LUT file as the device's LUT in the database (the device is created when new).

    Example: hwlut lut import lut-fbnet-224-ort-1t.json --device laptop
    """
    from lut_store import FormatError, crud, read_table
    from searchspace import load_space

    _check_format(format)
    try:
        text = file.read_text()
    except UnicodeDecodeError:
        raise typer.BadParameter(
            f"{file} is not a text file; give a LUT file: {', '.join(LUT_FORMATS)}", param_hint="FILE"
        ) from None
    try:
        table = read_table(text, format, filename=file.name)
    except FormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    spec = load_space(space, resolution=resolution) if space else None
    store = _open_store(db, create=True)
    with store.transaction(write=True) as session:
        try:
            dev = crud.get_device(session=session, name=device)
        except crud.NotFound:
            dev, _token = crud.create_device(session=session, name=device)
            typer.echo(f"device {device} created (a token for its agent: hwlut device token {device}, on the server)")
        job = crud.import_table(session=session, device=dev, table=table, space=spec)
        snap = crud.lut_snapshot(session=session, job=job)
        job_id = job.id
    unmapped = len(table.unmapped())
    state = "complete" if snap.complete else "partial"
    if snap.space is not None:
        wanted = snap.space.distinct_entries()
        missing = sum(1 for e in wanted if e.key not in snap.by_entry)
        state += f": {len(wanted) - missing}/{len(wanted)} entries of {snap.space.name}-{snap.space.resolution}"
        state += f", {missing} missing" if missing else ""
    typer.echo(
        f"LUT {job_id} of {device}: {len(table.rows)} rows from a {table.format} table ({state})"
        + (f"; {unmapped} are no hwlut op and keep their original keys" if unmapped else "")
    )
    store.dispose()


app.command("show")(show)


@app.command("export")
def export(
    device: DeviceOpt,
    out: OutOpt,
    db: DbOpt = None,
    job: JobRefOpt = "latest",
    format: FormatOpt = "hwlut",
) -> None:
    """Write one of the device's LUTs in the database to a file.

    Example: hwlut lut export --device laptop --job latest --format csv --out laptop.csv
    """
    from lut_store import FormatError, crud, write_table

    _check_format(format)
    store = _open_store(db)
    with store.transaction() as session:
        snap = crud.lut_snapshot(session=session, job=crud.resolve_lut(session=session, device=device, ref=job))
    try:
        text, left_out = write_table(crud.snapshot_table(snap), format)
    except FormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="--format") from None
    if _write(out, text):
        typer.echo(f"{out}: {len(snap.rows) - len(left_out)} entries ({format})", err=str(out) == "-")
    if left_out:
        typer.echo(f"warning: {len(left_out)} entries have no {format} name and were left out", err=True)


@app.command("get")
def get(
    device: DeviceOpt,
    out: OutOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    job: JobRefOpt = "latest",
    format: FormatOpt = "hwlut",
) -> None:
    """Download a device's LUT from a server.

    Example: hwlut lut get --device pixel7-cpu-1t --out pixel7.json   (then: hwlut lut show pixel7.json)
    """
    _check_format(format)
    with connect(server, token) as client:
        text = client.lut_text(device, job, format=format)
    if _write(out, text):
        typer.echo(f"{out}: LUT {job} of {device} ({format})")


def _ms(us: float | None) -> str:
    return "—" if us is None else f"{us / 1000:.3f}"


@query_app.command("entry")
def query_entry(
    key: Annotated[str, typer.Argument(help="An entry key in any rendering.", metavar="KEY")],
    device: DeviceOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    job: JobRefOpt = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="The server's answer as JSON (µs).")] = False,
) -> None:
    """One entry's latency and statistics.

    Example: hwlut query entry tbs_h56_w56_cin24_cout24_s1_k3_e1_g1 --device laptop
    """
    with connect(server, token) as client:
        doc = client.entry(device, key, lut=job)
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    stats = doc.get("stats") or {}
    typer.echo(f"{doc['key']}: {_ms(doc['latency_us'])} ms ({doc['latency_us']:.2f} µs) on {device}")
    shown = {k: v for k, v in stats.items() if isinstance(v, (int, float, str)) and k != "median"}
    if shown:
        typer.echo("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))


@query_app.command("arch")
def query_arch(
    arch: Annotated[
        str, typer.Argument(help="Candidate names joined by commas, one per searchable layer.", metavar="ARCH")
    ],
    device: DeviceOpt,
    server: ServerOpt = None,
    token: TokenOpt = None,
    job: JobRefOpt = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="The server's answer as JSON (µs).")] = False,
) -> None:
    """An architecture's LUT sum, layer by layer, calibrated beside raw (exit 3 when entries are missing).

    Example: hwlut query arch k3_e6,skip,k5_e1,… --device laptop   (one candidate per searchable layer)
    """
    from rich.table import Table

    from .console import out_console

    with connect(server, token) as client:
        doc = client.architecture_latency(device, arch, lut=job)
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
    else:
        table = Table("layer", "key", "ms", title=f"{device} LUT {doc['lut']}: {arch[:60]}")
        for layer in doc["layers"]:
            table.add_row(layer["layer"], layer["key"], _ms(layer["latency_us"]))
        out_console().print(table)
        total = f"total {_ms(doc['total_us'])} ms (raw LUT sum)"
        if doc.get("calibrated_us") is not None:
            total += f", {_ms(doc['calibrated_us'])} ms calibrated"
        typer.echo(total)
    if not doc["complete"]:
        missing = doc["missing"]
        fail(
            f"LUT {doc['lut']} of {device} lacks {len(missing)} entr{'y' if len(missing) == 1 else 'ies'} of this "
            f"network ({', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}), so the total is no latency; "
            "measure them (hwlut job create --entry KEY) or ask another LUT (--job)",
            EXIT_INCOMPLETE,
        )
