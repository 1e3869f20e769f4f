"""``hwlut job``: create a profiling job on a server and follow its progress."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from searchspace.validation import MAX_VALIDATION_NETWORKS

app = typer.Typer(help="Profiling jobs on an hwlut server.", no_args_is_help=True)
ServerOpt = Annotated[str, typer.Option("--server", envvar="HWLUT_SERVER", help="Server URL.")]


def _token() -> str | None:
    return os.environ.get("HWLUT_TOKEN") or os.environ.get("HWLUT_ADMIN_TOKEN")


#: A job setting (as JobSettings names it) -> the option of ``hwlut job create`` that gives it.
_OPTION_OF = {
    "runtime": "--runtime",
    "threads": "--threads",
    "options.xnnpack": "--xnnpack",
    "options.optimization": "--optimization",
    "options.cache_mode": "--cache-mode",
    "options.protocol.target_rel_ci": "--precision",
    "options.protocol.time_cap_s": "--time-cap",
}


@app.command("create")
def create(
    device: Annotated[str, typer.Option("--device", help="Device name.")],
    server: ServerOpt = "http://127.0.0.1:8000",
    space: Annotated[str, typer.Option(help="Built-in space name or a spec file.")] = "fbnet",
    resolution: Annotated[int | None, typer.Option("--resolution", "-r")] = None,
    runtime: Annotated[str, typer.Option(help="ort (onnxruntime), tflite (LiteRT) or adb.")] = "ort",
    threads: Annotated[int, typer.Option(min=1, help="Runtime threads.")] = 1,
    xnnpack: Annotated[bool | None, typer.Option("--xnnpack/--no-xnnpack", help="LiteRT/adb: XNNPACK.")] = None,
    optimization: Annotated[str | None, typer.Option(help="onnxruntime optimisation level.")] = None,
    cache_mode: Annotated[
        str | None,
        typer.Option(help="warm, l2 or cold: caches evicted before each timed run (default: the runtime's)."),
    ] = None,
    precision: Annotated[float | None, typer.Option(help="Target ± share of the median's 95% CI.")] = None,
    time_cap: Annotated[float | None, typer.Option(help="Measuring time cap per entry, seconds.")] = None,
    entries: Annotated[
        list[str] | None, typer.Option("--entry", help="Only this entry (key in any rendering; repeat).")
    ] = None,
    lease_seconds: Annotated[float, typer.Option(help="Lease length; agents heartbeat it.")] = 300.0,
    validate: Annotated[
        int | None,
        typer.Option(
            "--validate",
            min=0,
            max=MAX_VALIDATION_NETWORKS,
            help="Also measure N whole networks drawn from the space (validation: the server computes the "
            "LUT's accuracy). A job of some entries measures their entries too.",
        ),
    ] = None,
    validate_seed: Annotated[int, typer.Option("--validate-seed", min=0, help="Seed of the draw and split.")] = 0,
    archs: Annotated[
        list[str] | None, typer.Option("--arch", help="A named validation network (repeat; implies --validate 0).")
    ] = None,
    token: Annotated[str | None, typer.Option(help="Admin or device token (default: $HWLUT_TOKEN).")] = None,
) -> None:
    """A job whose work items are the space's distinct entries (admin or the device's token); prints it as JSON.

    ``--validate N`` (and ``--arch``) adds validation networks that the
    device's agents measure beside the entries, in the same batches.
    """
    from lutclient import HwlutClient, HwlutError
    from searchspace import BUILTIN_SPACES, JobSettings, load_space
    from searchspace.fields import FieldError
    from searchspace.jobs import default_cache_mode

    spec: str | dict = space if space in BUILTIN_SPACES else load_space(space, resolution=resolution).to_dict()
    protocol = {k: v for k, v in (("target_rel_ci", precision), ("time_cap_s", time_cap)) if v is not None}
    try:
        settings = JobSettings(
            runtime=runtime,
            threads=threads,
            protocol=protocol,
            xnnpack=xnnpack,
            optimization=optimization,
            cache_mode=cache_mode or default_cache_mode(runtime),
        )
    except FieldError as exc:
        raise typer.BadParameter(exc.message, param_hint=_OPTION_OF.get(exc.where, exc.where)) from None
    validation = None
    if validate is not None or archs:
        validation = {"n": validate or 0, "seed": validate_seed, "archs": list(archs or [])}
    try:
        with HwlutClient(server, token=token or _token()) as client:
            doc = client.create_job(
                device,
                space=spec,
                resolution=resolution,
                settings=settings,
                lease_seconds=lease_seconds,
                entries=entries,
                validation=validation,
            )
    except HwlutError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(doc, indent=1, default=str))


@app.command("show")
def show(job_id: int, server: ServerOpt = "http://127.0.0.1:8000") -> None:
    """A job as JSON."""
    from lutclient import HwlutClient

    with HwlutClient(server, token=os.environ.get("HWLUT_TOKEN")) as client:
        typer.echo(json.dumps(client.job(job_id), indent=1))


def progress_line(job: dict[str, Any]) -> str:
    """``job 3 [running] ort, 1 thread: 40/112 done (36%), 16 leased, 56 pending, 0 failed``.

    With validation networks: ``; validation networks 4/10 done, 2 leased, 4 pending, 0 failed``.
    """
    p = job["progress"]
    share = p["done"] / p["total"] if p["total"] else 1.0
    line = (
        f"job {job['id']} [{job['status']}] device {job['device']}, {job['space_name']} at {job['resolution']}, "
        f"{job['runtime']}, {job['threads'] or 'any'} thread(s): {p['done']}/{p['total']} done ({share:.0%}), "
        f"{p['leased']} leased, {p['pending']} pending, {p['failed']} failed"
    )
    v = job.get("validation") or {}
    if v.get("total"):
        line += (
            f"; validation networks {v['done']}/{v['total']} done, {v['leased']} leased, "
            f"{v['pending']} pending, {v['failed']} failed"
        )
    return line


@app.command("status")
def status(
    job_id: int,
    server: ServerOpt = "http://127.0.0.1:8000",
    as_json: Annotated[bool, typer.Option("--json", help="The job as JSON.")] = False,
) -> None:
    """A job's status and progress: items done, leased, pending and failed (exit 1 when it failed)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from lutclient import HwlutClient, HwlutError

    from .console import out_console

    try:
        with HwlutClient(server, token=os.environ.get("HWLUT_TOKEN")) as client:
            job = client.job(job_id)
    except HwlutError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(job, indent=1))
    else:
        typer.echo(progress_line(job))
        console = out_console()
        if console.is_terminal:
            p = job["progress"]
            with Progress(TextColumn("items"), BarColumn(), TaskProgressColumn(), console=console) as bar:
                bar.add_task("", total=p["total"] or 1, completed=p["done"])
    if job["status"] == "failed":
        raise typer.Exit(1)
