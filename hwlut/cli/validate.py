"""``hwlut validate``: how well a LUT's sums predict whole networks measured end to end.

Three ways, one report (printed the same way):

``hwlut validate --lut FILE``
    measures here: draws ``--n`` architectures of the LUT's space with
    ``--seed`` (plus every ``--arch``; ``--draw stratified``, the default,
    spreads them over the LUT-sum range in ``--strata`` bins), exports and
    measures them interleaved with the LUT's protocol
    (:func:`profiler.validate.validate_lut`), and prints per network the
    measured latency, the raw LUT sum, the overhead-corrected sum and the
    calibrated prediction, out of fold; then the figures (share within ±5% /
    ±10% with its 95% lower bound, MAPE and Spearman with bootstrap
    intervals, RMSPE, Kendall), the calibration cross-validation chose and
    by how much, the figures per stratum and the verdict.
    ``--write-calibration`` stores the calibration in the LUT file, saying
    what it replaced; it refuses to lose evidence (a larger report, a
    calibration) unless ``--replace`` is given too.

``hwlut validate --device NAME [--server URL] [--job ID|latest]``
    lets the device's agent measure: the networks are added to the server's
    job as work items (``POST /v1/devices/{name}/luts/{job}/validation``), an
    agent of the device (``hwlut agent``) measures them with the job's runtime
    and protocol, the server computes the report, and this command waits for
    it (``--timeout``), printing progress, then prints it. Nothing is measured
    here. ``--server`` defaults to ``$HWLUT_SERVER``, the token to
    ``$HWLUT_TOKEN`` (or ``$HWLUT_ADMIN_TOKEN``).

``hwlut validate --device NAME --here [--server URL] [--job ID|latest]``
    fetches the server's LUT, validates it here as with ``--lut``, and stores
    the report on the server (``PUT /v1/devices/{name}/luts/{job}/accuracy``).

``--plot`` writes a PNG, ``--json`` prints the whole report as one JSON object.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from searchspace import ArchitectureError, LatencyTable, MissingEntries
from searchspace.validation import DEFAULT_NETWORKS, MAX_VALIDATION_NETWORKS

from .accuracy_view import print_validation as _print
from .console import out_console
from .options import (
    PROTOCOL_DEFAULTS,
    ProtocolOptions,
    lut_file_option,
    protocol_options,
    server_lut_option,
)

__all__ = ["validate"]

#: Options that only a measurement here uses (the device's agent measures with the job's settings).
_HERE_ONLY = {
    "runtime": "--runtime",
    "threads": "--threads",
    "calibration": "--calibration",
    "draw": "--draw",
    "strata": "--strata",
    "precision": "--precision",
    "time_cap": "--time-cap",
    "slice_s": "--slice",
    "min_passes": "--min-passes",
    "warmup_runs": "--warmup-runs",
    "warmup_time": "--warmup-time",
}
#: Seconds between two looks at the job while waiting for the device's agent.
POLL_S = 1.0


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not a default, not the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


@protocol_options
def validate(
    ctx: typer.Context,
    lut: Annotated[
        Path | None, typer.Option("--lut", exists=True, dir_okay=False, help="The hwlut LUT file to validate.")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option("--server", envvar="HWLUT_SERVER", help="The hwlut server whose LUT to validate (with --device)."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="The server's device: its agent measures the networks (or --here)."),
    ] = None,
    job: Annotated[str, typer.Option("--job", help="The server's LUT: a job id or latest.")] = "latest",
    here: Annotated[
        bool,
        typer.Option("--here", help="With --device: measure here and upload the report, instead of the agent."),
    ] = False,
    token: Annotated[
        str | None, typer.Option("--token", envvar="HWLUT_TOKEN", help="A token of the device (or the admin's).")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the device's agent (with --device).")
    ] = 3600.0,
    runtime: Annotated[
        str | None, typer.Option("--runtime", help="ort or tflite (default: the LUT's runtime).")
    ] = None,
    n: Annotated[
        int, typer.Option("--n", min=0, max=MAX_VALIDATION_NETWORKS, help="Random validation networks to draw.")
    ] = DEFAULT_NETWORKS,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the draw and of the fit/held-out split.")] = 0,
    arch: Annotated[
        list[str] | None, typer.Option("--arch", help="A named architecture to validate too (repeatable).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Runtime threads (default: the LUT's).")] = None,
    calibration: Annotated[
        str,
        typer.Option(help="auto (cross-validation chooses), none, overhead, scale, offset or linear (it or none)."),
    ] = "auto",
    draw: Annotated[
        str, typer.Option("--draw", help="stratified (over the LUT-sum range) or uniform random networks.")
    ] = "stratified",
    strata: Annotated[int, typer.Option("--strata", min=1, max=50, help="Strata of a stratified draw.")] = 5,
    plot: Annotated[Path | None, typer.Option("--plot", dir_okay=False, help="Write a PNG plot here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    write_cal: Annotated[
        bool, typer.Option("--write-calibration", help="Store the calibration and figures in the LUT file.")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="With --write-calibration: replace a larger report, or remove a calibration."),
    ] = False,
    protocol: ProtocolOptions = PROTOCOL_DEFAULTS,  # the six protocol options (see protocol_options)
) -> None:
    """Validate a LUT against whole networks: measured here (--lut, --here) or by the device's agent (--device)."""
    from profiler.plots import plot_report
    from profiler.runtimes import RuntimeUnavailable
    from profiler.validate import RuntimeMismatch, replacing, validate_lut, write_calibration
    from searchspace.calibration import MODELS

    from .verify import lut_runtime

    err = Console(stderr=True)
    if lut is not None and (device is not None or _given(ctx, "server")):
        raise typer.BadParameter(
            "give either --lut FILE or --server URL --device NAME, not both", param_hint="--lut/--server"
        )
    if lut is None and device is None:
        if server is not None and _given(ctx, "server"):
            raise typer.BadParameter("--server needs --device NAME", param_hint="--device")
        raise typer.BadParameter("give either --lut FILE or --server URL --device NAME", param_hint="--lut/--server")
    if lut is None and server is None:
        raise typer.BadParameter("--device needs --server URL (or HWLUT_SERVER)", param_hint="--server")
    if here and device is None:
        raise typer.BadParameter("--here measures a server's LUT here: give --device NAME", param_hint="--here")
    if device is not None and write_cal:
        raise typer.BadParameter(
            "--write-calibration writes a LUT file; with --server the report is uploaded to the server instead",
            param_hint="--write-calibration",
        )
    if device is not None and not here:
        flags = ", ".join(flag for name, flag in _HERE_ONLY.items() if _given(ctx, name))
        if flags:
            raise typer.BadParameter(
                f"{flags}: only a measurement here uses this (--lut, or --here); the device's agent measures "
                "with the job's runtime and protocol, and the server chooses the calibration by cross-validation",
                param_hint=flags,
            )
        assert server is not None
        doc = _via_agent(err, server, device, job, token, n=n, seed=seed, archs=arch or (), timeout=timeout)
        if plot is not None:
            from profiler.validate import report_from_dict

            meta = doc["report"].get("meta") or {}
            rt_name = (doc.get("runtime") or {}).get("runtime")
            title = f"{device} LUT {doc['lut']}: {meta.get('space')}-{meta.get('resolution')} on {rt_name}"
            plot_report(report_from_dict(doc["report"]), plot, title=title)
        shown = {**doc, "lut": f"{server.rstrip('/')} {device} LUT {doc['lut']}", "plot": str(plot) if plot else None}
        if as_json:
            typer.echo(json.dumps(shown, indent=1))
        else:
            _print(out_console(), shown)
        return
    kind = None if calibration == "none" else calibration
    if calibration not in ("auto", *MODELS):
        raise typer.BadParameter(
            f"unknown calibration {calibration!r}; known: auto, {', '.join(MODELS)}", param_hint="--calibration"
        )
    if draw not in ("stratified", "uniform"):
        raise typer.BadParameter(f"unknown draw {draw!r}; known: stratified, uniform", param_hint="--draw")
    job_id: int | None = None
    if device is not None:
        assert server is not None
        job_id, table = server_lut_option(server, device, job, token)
        label = f"{server.rstrip('/')} {device} LUT {job_id}"
    else:
        assert lut is not None
        table = lut_file_option(lut, "--lut")
        label = str(lut)
    name, rt = lut_runtime(table, runtime, threads)
    cfg = protocol.config()
    space = table.space
    try:
        doing = f"exporting and measuring validation networks of {space.name}-{space.resolution} on {name}"
        with err.status(doing) as spinner:
            first: list[tuple[float, float]] = []  # (time, share) at the first pass: the rate is measured from it

            def shown(measured: int, total: int, share: float) -> None:
                first[:] = first or [(time.monotonic(), share)]
                spinner.update(f"{doing}: {progress_text(measured, total, share, first[0], time.monotonic())}")

            result = validate_lut(
                table,
                rt,
                cfg,
                n=n,
                seed=seed,
                archs=arch or (),
                calibration=kind,
                draw=draw,
                strata=strata,
                on_progress=shown,
            )
    except ArchitectureError as exc:
        raise typer.BadParameter(str(exc), param_hint="--arch") from None
    except MissingEntries as exc:
        err.print(f"[red]error[/]: {label}: {exc}", highlight=False)
        raise typer.Exit(2) from None
    except (RuntimeMismatch, RuntimeUnavailable, ValueError) as exc:
        err.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    except RuntimeError as exc:
        err.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(1) from None

    replaced: list[str] = []
    if write_cal and lut is not None:  # re-read: the file may have gained entries meanwhile
        current = LatencyTable.load(lut)
        replaced, losses = replacing(current, result)
        if losses and not replace:
            err.print(
                f"[red]error[/]: {lut} left as it was: " + "; ".join(losses) + ". Add --replace to write it anyway.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2)
        write_calibration(current, result, lut)
    if plot is not None:
        short = lut.name if lut is not None else f"{device} LUT {job_id}"
        plot_report(result.report, plot, title=f"{short}: {space.name}-{space.resolution} on {name}")
    doc = {**result.to_dict(), "lut": label, "plot": str(plot) if plot else None}
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
    else:
        _print(out_console(), doc)
    if write_cal:
        cal_said = f"calibration {result.report.chosen}" if result.report.calibration is not None else "no calibration"
        err.print(f"{cal_said} and figures written to {lut}", highlight=False)
        for line in replaced:
            err.print(f"  {line}", highlight=False, soft_wrap=True)
    if device is not None and job_id is not None:
        assert server is not None
        _upload(err, server, device, job_id, token, result.to_dict())


def progress_text(measured: int, total: int, share: float, since: tuple[float, float], now: float) -> str:
    """``networks 3/10 measured, about 1m 20s left``: the time left from the rate since ``since`` (time, share)."""
    text = f"networks {measured}/{total} measured"
    t0, share0 = since
    if share >= 1.0:
        return text
    if share <= share0 or now <= t0:
        return f"{text}, estimating the time left"
    left = round((now - t0) / (share - share0) * (1.0 - share))
    return f"{text}, about {left // 60}m {left % 60:02d}s left" if left >= 60 else f"{text}, about {left}s left"


def _via_agent(
    err: Console,
    server: str,
    device: str,
    job: str,
    token: str | None,
    *,
    n: int,
    seed: int,
    archs: Any,
    timeout: float,
) -> dict[str, Any]:
    """Add validation networks to the server's job, wait for the device's agent and the server's report; return it.

    Exit 2 when the server refuses (a bad ``--arch``, an imported LUT, no
    such device or job), 1 when it is unreachable, the job failed, every
    network failed, or ``timeout`` passed first.
    """
    from lutclient import ApiError, HwlutClient, NotFound, ServerUnreachable
    from searchspace import network_item_key

    def fail(message: str, code: int) -> typer.Exit:
        err.print(f"[red]error[/]: {message}", highlight=False, soft_wrap=True)
        return typer.Exit(code)

    agent_hint = (
        f"an agent of device {device!r} must be running to measure them: "
        f"hwlut agent --server {server.rstrip('/')} --token DEVICE_TOKEN"
    )
    try:
        with HwlutClient(server, token=token or os.environ.get("HWLUT_ADMIN_TOKEN")) as client:
            try:
                plan = client.add_validation(device, lut=job, n=n, seed=seed, archs=archs)
            except ApiError as exc:
                raise fail(f"{server}: LUT {job} of {device!r}: {exc}", 2) from None
            job_id, wanted = int(plan["lut"]), list(plan["archs"])
            err.print(
                f"job {job_id} of {device!r}: {plan['added']} validation network(s) added, "
                f"{len(wanted) - plan['added']} it had already; {agent_hint}",
                highlight=False,
                soft_wrap=True,
            )
            deadline = time.monotonic() + timeout
            said = ""
            while True:
                state = client.job(job_id)
                v, p = state["validation"], state["progress"]
                line = (
                    f"  networks {v['done']}/{v['total']} measured, {v['leased']} being measured, {v['failed']} "
                    f"failed; entries {p['done']}/{p['total']} ({state['status']})"
                )
                if line != said:
                    err.print(line, highlight=False, soft_wrap=True)
                    said = line
                if state["status"] == "failed":
                    raise fail(f"job {job_id} failed (entries failed for good): its LUT cannot be validated", 1)
                if state["status"] == "complete" and v["pending"] == 0 and v["leased"] == 0:
                    failed = {f["key"] for f in client.failed(job_id)}
                    lost = [a for a in wanted if network_item_key(a) in failed]
                    if len(lost) == len(wanted):
                        raise fail(f"every requested network failed on the agent (see hwlut job status {job_id})", 1)
                    try:
                        doc = client.accuracy(device, lut=job_id)
                    except NotFound:
                        doc = None
                    if doc is not None and _covers(doc, set(wanted) - set(lost)):
                        if lost:
                            err.print(f"  {len(lost)} network(s) failed on the agent: left out", highlight=False)
                        return doc
                if time.monotonic() > deadline:
                    raise fail(
                        f"timed out after {timeout:.0f} s: {v['done']} of {v['total']} networks measured; {agent_hint}",
                        1,
                    )
                time.sleep(POLL_S)
    except ServerUnreachable as exc:
        raise fail(f"{server}: {exc}", 1) from None


def _covers(doc: dict[str, Any], archs: set[str]) -> bool:
    """Whether a stored accuracy document is the server's report over (at least) ``archs``."""
    if doc.get("source") != "job":
        return False
    report = doc["report"]
    covered = {r["arch"] for r in report["rows"]} | set((report.get("meta") or {}).get("unpriced") or [])
    return archs <= covered


def _upload(err: Console, server: str, device: str, job_id: int, token: str | None, doc: dict[str, Any]) -> None:
    """PUT the validation as the LUT's accuracy report; exit 1 when the server refuses or stays away."""
    from lutclient import ApiError, HwlutClient, ServerUnreachable

    try:
        with HwlutClient(server, token=token) as client:
            client.upload_accuracy(device, doc, lut=job_id)
    except (ApiError, ServerUnreachable) as exc:
        err.print(f"[red]error[/]: the report was not stored on {server}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    err.print(f"accuracy report stored on {server} for LUT {job_id} of {device!r}", highlight=False)
