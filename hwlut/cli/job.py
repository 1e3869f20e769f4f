"""``hwlut job``: create, list, follow and cancel profiling jobs on a server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from searchspace.validation import MAX_VALIDATION_NETWORKS

from .options import CacheModeOpt, OptimizationOpt, RuntimeOpt, choices
from .remote import ServerOpt, TokenOpt, connect, server_url

app = typer.Typer(help="Profiling jobs on an hwlut server: create, list, status, cancel.", no_args_is_help=True)
JobIdArg = Annotated[int, typer.Argument(help="The job's id (hwlut job list shows them).", metavar="ID")]
#: A job's statuses, as the server gives them (``crud.JOB_STATUSES``; kept equal by a test).
JOB_STATUSES = ("pending", "running", "complete", "failed", "cancelled")


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
    server: ServerOpt = None,
    space: Annotated[str, typer.Option(help="Built-in space name or a spec file.")] = "fbnet",
    resolution: Annotated[int | None, typer.Option("--resolution", "-r", help="Input resolution (224, 32).")] = None,
    runtime: RuntimeOpt = "ort",
    threads: Annotated[int, typer.Option(min=1, help="Runtime threads.")] = 1,
    xnnpack: Annotated[bool | None, typer.Option("--xnnpack/--no-xnnpack", help="LiteRT/adb: XNNPACK.")] = None,
    optimization: OptimizationOpt = None,
    cache_mode: CacheModeOpt = None,
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
    token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON instead of a summary.")] = False,
) -> None:
    """A job whose work items are the space's distinct entries (admin or the device's token).

    --validate N (and --arch) adds validation networks that the device's
    agents measure beside the entries, in the same batches. Every setting is
    checked here and by the server before the job exists.

    Example: hwlut job create --device pixel7-cpu-1t -r 224 --runtime tflite --validate 30
    """
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
    with connect(server, token) as client:
        doc = client.create_job(
            device,
            space=spec,
            resolution=resolution,
            settings=settings,
            lease_seconds=lease_seconds,
            entries=entries,
            validation=validation,
        )
    if as_json:
        typer.echo(json.dumps(doc, indent=1, default=str))
        return
    typer.echo(progress_line(doc))
    url = server_url(server)
    typer.echo(
        f"next: on the device, hwlut agent --server {url} --token DEVICE_TOKEN --job {doc['id']}\n"
        f"      follow it with hwlut job status {doc['id']}; when complete: hwlut lut show --device {device} "
        f"--job {doc['id']}; give up on it with hwlut job cancel {doc['id']}"
    )


@app.command("show")
def show(job_id: JobIdArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """A job as JSON. Example: hwlut job show 3"""
    with connect(server, token) as client:
        typer.echo(json.dumps(client.job(job_id), indent=1))


@app.command("list")
def list_(
    server: ServerOpt = None,
    token: TokenOpt = None,
    device: Annotated[str | None, typer.Option("--device", help="Only this device's jobs.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help=f"Only jobs of this status: {', '.join(JOB_STATUSES)}.",
            autocompletion=choices(JOB_STATUSES),
            metavar="STATUS",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Jobs and imported LUTs of every device, newest first, with their progress.

    Example: hwlut job list --status pending   (a job no agent takes: hwlut job cancel ID)
    """
    from rich.table import Table

    from .console import out_console

    if status is not None and status not in JOB_STATUSES:
        raise typer.BadParameter(f"unknown status {status!r}; known: {', '.join(JOB_STATUSES)}", param_hint="--status")
    with connect(server, token) as client:
        jobs = client.list_jobs(device=device, status=status, limit=limit)
    if as_json:
        for job in jobs:
            typer.echo(json.dumps(job, default=str))
        return
    if not jobs:
        typer.echo("no jobs" + (f" of {device}" if device else "") + (f" with status {status}" if status else ""))
        return
    columns = ("id", "device", "kind", "status", "space", "runtime", "done", "pending", "leased", "failed", "created")
    table = Table(*columns)
    for j in jobs:
        p = j["progress"]
        space = f"{j['space_name'] or '-'}-{j['resolution'] or '?'}"
        runtime = f"{j['runtime'] or '-'} {j['threads'] or ''}".strip()
        table.add_row(
            str(j["id"]), j["device"], j["kind"], j["status"], space, runtime,
            f"{p['done']}/{p['total']}", str(p["pending"]), str(p["leased"]), str(p["failed"]),
            str(j["created_at"])[:19],
        )  # fmt: skip
    out_console().print(table)


@app.command("cancel")
def cancel(job_id: JobIdArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Cancel a pending or running job (admin or the device's token): agents take none of its items any more.

    What was measured stays on the server; a complete or failed job cannot be cancelled.

    Example: hwlut job cancel 7
    """
    with connect(server, token) as client:
        job = client.cancel_job(job_id)
    p = job["progress"]
    typer.echo(f"job {job_id} cancelled ({p['done']}/{p['total']} entries had been measured)")


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
    job_id: JobIdArg,
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="The job as JSON.")] = False,
) -> None:
    """A job's status and progress: items done, leased, pending and failed (exit 1 when it failed).

    Example: hwlut job status 3
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from .console import out_console

    with connect(server, token) as client:
        job = client.job(job_id)
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
