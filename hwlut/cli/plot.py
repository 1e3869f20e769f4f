"""``hwlut plot lut|compare|accuracy``: the dashboard's pictures as PNG files (matplotlib, headless).

The figures come from :mod:`searchspace.figures`, the module the dashboard's
pages render from, so a PNG and its page show the same numbers. A LUT is a
file (``FILE``) or a server's (``--device NAME [--job ID|latest]``, or
``NAME[@JOB]`` in ``compare`` with ``--server``; in ``compare`` also a
ProxylessNAS / OFA YAML table with ``--space``); ``--server`` defaults to
``$HWLUT_SERVER`` and the token to ``$HWLUT_TOKEN``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from .options import lut_file_option, server_lut_option

__all__ = ["app"]

app = typer.Typer(
    help="Plot a LUT's heatmap, two LUTs compared, or a LUT's accuracy, as PNG.",
    no_args_is_help=True,
    epilog="Example: hwlut plot lut lut.json --out lut.png",
)

ServerOpt = Annotated[str, typer.Option("--server", envvar="HWLUT_SERVER", help="Server URL.")]
OutOpt = Annotated[Path, typer.Option("--out", dir_okay=False, help="The PNG to write.")]
JobOpt = Annotated[str, typer.Option("--job", help="With --device: a job id or latest.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


def _lut(ref: str | Path | None, device: str | None, server: str, job: str, hint: str) -> tuple[str, Any]:
    """(label, LatencyTable) of a file, or of ``device``'s LUT ``job`` on ``server``."""
    if (ref is None) == (device is None):
        raise typer.BadParameter("give a LUT FILE or --device NAME (a server's LUT)", param_hint=hint)
    if device is not None:
        job_id, table = server_lut_option(server, device, job, os.environ.get("HWLUT_TOKEN"))
        return f"{device} LUT {job_id}", table
    return str(ref), lut_file_option(Path(str(ref)), hint)


def _done(path: Path) -> None:
    typer.echo(str(path))


@app.command("lut")
def plot_lut(
    out: OutOpt,
    file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False, help="An hwlut LUT file.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="A server's LUT instead of a file.")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    job: JobOpt = "latest",
) -> None:
    """The layers × candidates heatmap (ms) with the fixed entries in the title."""
    from searchspace.figures import heatmap, render_png

    label, table = _lut(file, device, server, job, "FILE/--device")
    _done(render_png(heatmap(table), out, title=f"{label}: latency per layer and candidate (ms)"))


def _file_lut(ref: str, space: str | None, hint: str) -> tuple[str, Any]:
    """(label, LatencyTable) of an hwlut JSON file, or of a ProxylessNAS / OFA YAML read as a LUT of ``space``."""
    if Path(ref).suffix.lower() not in (".yaml", ".yml"):
        return _lut(ref, None, "", "latest", hint)
    from searchspace import LutFileError, SpecError, load_space
    from searchspace.reference import load_table

    try:
        spec = load_space(space) if space else None
    except SpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--space") from None
    try:
        return ref, load_table(ref, spec)
    except (LutFileError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None


@app.command("compare")
def plot_compare(
    a: Annotated[str, typer.Argument(help="LUT A: a file, or NAME[@JOB] of a device on --server.")],
    b: Annotated[str, typer.Argument(help="LUT B: a file, or NAME[@JOB] of a device on --server.")],
    out: OutOpt,
    server: ServerOpt = DEFAULT_SERVER,
    space: Annotated[
        list[str] | None,
        typer.Option(
            help="The space of an A/B given as a ProxylessNAS / OFA YAML table (built-in name or spec file); "
            "twice for A's and B's when both are YAML tables of different spaces."
        ),
    ] = None,
) -> None:
    """The per-entry ratio B / A (log colour scale); layers whose fastest candidate differs in red.

    A and B may be of different spaces (a LUT measured here against a published
    phone table): the entries both hold are compared on A's layers, and the
    unmatched ones counted.
    """
    from searchspace.figures import compare, render_png

    spaces = space or [None]
    if len(spaces) > 2:
        raise typer.BadParameter("give one space, or two (A's then B's)", param_hint="--space")
    tables = []
    for i, (ref, hint) in enumerate(((a, "A"), (b, "B"))):
        if Path(ref).is_file():
            tables.append(_file_lut(ref, spaces[min(i, len(spaces) - 1)], hint))
        else:
            name, _, job = ref.partition("@")
            tables.append(_lut(None, name, server, job or "latest", hint))
    try:
        cmp = compare(tables[0][1], tables[1][1])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="A/B") from None
    _done(render_png(cmp, out, title=f"B / A: {tables[1][0]} over {tables[0][0]}"))
    if cmp.partial:
        typer.echo(cmp.match_text(), err=True)
    for i in cmp.differing:
        fa, fb = cmp.fastest[i]
        typer.echo(f"layer {cmp.a.layers[i]}: fastest {fa} in A, {fb} in B", err=True)
    for line in cmp.conditions:
        typer.echo(f"warning: measured differently: {line}", err=True)


@app.command("accuracy")
def plot_accuracy(
    out: OutOpt,
    file: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, help="A validation: `hwlut validate --json` output, or its report."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="A server LUT's stored accuracy instead.")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    job: JobOpt = "latest",
) -> None:
    """Predicted against measured whole networks (ms) with the ±10% band."""
    from searchspace.figures import accuracy_scatter, render_png

    if (file is None) == (device is None):
        raise typer.BadParameter("give a validation FILE or --device NAME", param_hint="FILE/--device")
    if device is not None:
        from lutclient import HwlutClient

        with HwlutClient(server, token=os.environ.get("HWLUT_TOKEN")) as client:
            doc = client.accuracy(device, lut=job)
        label = f"{device} LUT {doc.get('lut', job)}"
    else:
        assert file is not None
        try:
            doc = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"{file}: {exc}", param_hint="FILE") from None
        label = str(file)
    report = doc.get("report", doc) if isinstance(doc, dict) else None
    scatter = accuracy_scatter(report, doc.get("verdict")) if isinstance(report, dict) else None
    if scatter is None or not scatter.series:
        raise typer.BadParameter(f"{label}: no accuracy report rows (measured_us, raw_us) in it", param_hint="FILE")
    _done(render_png(scatter, out, title=f"{label}: LUT prediction vs measured"))
