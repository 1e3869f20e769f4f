"""``hwlut quickstart``: the whole loop on this machine in one command.

Starts the server (a uvicorn subprocess on 127.0.0.1, a free port, the
embedded SQLite database under ``$HWLUT_HOME`` brought to the current schema,
an admin token made up for the session) unless ``--server URL`` names one;
registers this machine's CPU as a device; creates one profiling job of the
FBNet space on onnxruntime and one on LiteRT (1 thread each); exports every
entry of the space in both formats in one grouped, parallel export; runs an
agent (:mod:`profiler.agent`) for each job in this process; writes each LUT
to a file; and prints a summary (entries, wall time, fastest and slowest
block per layer, noise figures, accuracy), the time of each phase (server
start, export, measuring per runtime) and where to look next.

Each job also holds validation networks (``--networks``: 10 with ``--quick``,
30 otherwise; seed 0), exported up front with the entries and measured by
the agent in the same batches as the entries; the server computes each
LUT's accuracy from them, and the summary prints, per runtime, how well the
raw LUT sums and the calibrated ones (held-out networks only) predict them.

``--quick`` profiles the 32x32 variant with a looser protocol (±3% CI or
0.25 s per entry); the default profiles the 224x224 space with the default
protocol (±1% CI) and a 2 s cap per entry. ``--serve`` keeps the server
running afterwards.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from searchspace.validation import DEFAULT_NETWORKS, MAX_VALIDATION_NETWORKS

from .console import live_progress, out_console
from .options import CalmWaitOpt
from .quickstart_view import QuickHooks, Run, accuracy_summary, apart_summary, phase_line, summary
from .supervisor import local_server, until_signalled

__all__ = [
    "FULL_NETWORKS",
    "FULL_PROTOCOL",
    "QUICK_NETWORKS",
    "QUICK_PROTOCOL",
    "export_jobs",
    "quickstart",
]

#: The protocol of ``--quick`` (32x32): coarse but fast.
QUICK_PROTOCOL: dict[str, Any] = {
    "target_rel_ci": 0.03,
    "time_cap_s": 0.25,
    "warmup_s": 0.2,
    "slice_s": 0.02,
    "sentinel_slice_s": 0.01,
    "min_passes": 2,
}
#: The protocol of the full run (224x224): the default ±1% CI, a 2 s cap per entry.
FULL_PROTOCOL: dict[str, Any] = {"time_cap_s": 2.0}
#: Validation networks per job: ``--quick`` and the full run.
QUICK_NETWORKS = 10
#: Quickstart's calm gate: a short wait for a steady sentinel before each agent's first batch (half before later ones).
QUICKSTART_CALM_WAIT_S = 2.0
FULL_NETWORKS = DEFAULT_NETWORKS
#: The seed of the validation networks' draw and of the fit/held-out split.
VALIDATION_SEED = 0

RUNTIMES = (("ort", "onnxruntime"), ("tflite", "LiteRT"))


def export_jobs(space: Any, entries: list[Any], archs: list[Any]) -> list[tuple[Any, str]]:
    """Every ``(target, format)`` the two jobs need: the trivial entry, the sentinel, the entries, the networks."""
    from profiler.export import FORMATS, entry_target, network_target
    from profiler.local import default_sentinel
    from profiler.protocol import TRIVIAL_ENTRY

    unique = list({e.key: e for e in [TRIVIAL_ENTRY, default_sentinel(space), *entries]}.values())
    jobs = [(entry_target(e), fmt) for fmt in FORMATS for e in unique]
    return jobs + [(network_target(space, a), fmt) for fmt in FORMATS for a in archs]


def _apart_archs(space: Any, limit: int | None) -> dict[str, str]:
    """FBNet-A/B/C, to be measured apart from the build (none for a ``--limit`` run: its LUTs lack entries)."""
    from searchspace.named import NAMED_ARCHITECTURES

    if limit:
        return {}
    return {name: space.decode(name).encode() for name in NAMED_ARCHITECTURES.get(space.name, {})}


def _measure_apart(console: Console, runs: list[Run], archs: dict[str, str], protocol: dict, cache: Any) -> None:
    """Time ``archs`` on each runtime after both LUTs are built, beside each LUT's sentinel; kept in each file."""
    from profiler.protocol import ProtocolConfig
    from profiler.runtimes import make_runtime
    from profiler.verify import measure_apart

    t0 = time.perf_counter()
    for run in runs:
        rt = make_runtime(run.runtime, threads=1)
        run.apart = measure_apart(run.lut, rt, archs, ProtocolConfig(**protocol), cache=cache)
        doc = json.loads(run.path.read_text())
        doc.setdefault("provenance", {})["accuracy_apart"] = run.apart
        run.path.write_text(json.dumps(doc))
    console.print(f"apart from the build: {', '.join(archs)} timed on each runtime in {time.perf_counter() - t0:.1f} s")


def _device_name() -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-.") or "this"
    return f"{name[:100]}-cpu"


def quickstart(
    quick: Annotated[bool, typer.Option("--quick", help="The 32x32 space, a looser protocol (a few minutes).")] = False,
    server: Annotated[str | None, typer.Option("--server", help="Use this server instead of starting one.")] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Admin token of --server (default: $HWLUT_ADMIN_TOKEN).")
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep the server running afterwards (Ctrl-C stops it).")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Port of the server started here (default: a free one).")] = None,
    device: Annotated[str | None, typer.Option(help="Device name (default: HOSTNAME-cpu).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the LUT files (default: $HWLUT_HOME/luts).")] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Only the first N entries of the space (a smoke test; the LUT is partial)."),
    ] = None,
    networks: Annotated[
        int | None,
        typer.Option(
            "--networks",
            min=0,
            max=MAX_VALIDATION_NETWORKS,
            help=f"Validation networks per job (default {QUICK_NETWORKS} with --quick, {FULL_NETWORKS} otherwise; "
            "none with --limit, whose partial LUT cannot price them).",
        ),
    ] = None,
    calm_wait: CalmWaitOpt = QUICKSTART_CALM_WAIT_S,
) -> None:
    """Start the server, register this CPU, profile FBNet on onnxruntime and LiteRT with agents, summarise."""
    from searchspace.paths import hwlut_home

    # piped or logged, Rich would cut the tables at 80 columns
    console = out_console()
    home = hwlut_home()
    started = time.perf_counter()
    phases: dict[str, float] = {}  # seconds per phase, in the order they ran
    if networks is None:
        networks = 0 if limit else QUICK_NETWORKS if quick else FULL_NETWORKS
    elif networks and limit:
        raise typer.BadParameter(
            "--limit profiles part of the space: its LUT cannot price whole networks (give --networks 0)",
            param_hint="--networks",
        )
    run = functools.partial(
        _main,
        console,
        quick=quick,
        device=device,
        out=out or home / "luts",
        started=started,
        limit=limit,
        networks=networks,
        phases=phases,
        calm_wait=calm_wait,
    )
    if server is not None:
        admin = token or os.environ.get("HWLUT_ADMIN_TOKEN")
        if not admin:
            raise typer.BadParameter("an existing server needs its admin token (--token or HWLUT_ADMIN_TOKEN)")
        run(server, admin)
        return
    with console.status("starting the server (SQLite under HWLUT_HOME, migrations applied)…"):
        ctx = local_server(home, port=port)
        url, admin, proc = ctx.__enter__()
    phases["server start"] = time.perf_counter() - started
    try:
        console.print(f"server: {url} (database {home / 'hwlut.db'}, log {home / 'quickstart-server.log'})")
        run(url, admin)
        if serve:
            with until_signalled(proc):
                console.print(
                    f"\nThe server keeps running on {url} (Ctrl-C stops it). Admin token of this session:\n  {admin}"
                )
    finally:
        ctx.__exit__(None, None, None)


def _main(
    console: Console,
    url: str,
    admin: str,
    *,
    quick: bool,
    device: str | None,
    out: Path,
    started: float,
    limit: int | None = None,
    networks: int = 0,
    phases: dict[str, float] | None = None,
    calm_wait: float = 0.0,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lutclient import Conflict, HwlutClient, NotFound
    from profiler.agent import Agent, AgentConfig, AgentError
    from profiler.calm import CalmSettings
    from profiler.export import ArtifactCache, export_many
    from profiler.provenance import collect_host
    from searchspace import LatencyTable, load_space, plan_networks

    phases = phases if phases is not None else {}
    resolution = 32 if quick else 224
    protocol = QUICK_PROTOCOL if quick else FULL_PROTOCOL
    space = load_space("fbnet", resolution=resolution)
    entries = space.distinct_entries()[:limit]
    host = collect_host()
    name = device or _device_name()
    with HwlutClient(url, token=admin) as client:
        hardware = {k: host[k] for k in ("cpu_model", "cores", "machine", "os")}
        try:
            device_token = client.create_device(
                name, description="this machine's CPU (hwlut quickstart)", hardware=hardware
            )["token"]
            console.print(f"device: registered {name} ({host['cpu_model']})")
        except Conflict:
            device_token = client.new_token(name)
            console.print(f"device: {name} (registered before; a new token issued)")
    from searchspace.jobs import JobSettings, default_cache_mode

    runs: list[Run] = []
    with HwlutClient(url, token=device_token) as client:
        for rt, label in RUNTIMES:
            job = client.create_job(
                name,
                space="fbnet",
                resolution=resolution,
                settings=JobSettings(runtime=rt, threads=1, protocol=protocol, cache_mode=default_cache_mode(rt)),
                entries=[e.key for e in entries] if limit else None,
                validation={"n": networks, "seed": VALIDATION_SEED} if networks else None,
            )
            runs.append(Run(rt, label, job["id"]))
    archs = plan_networks(space, networks, VALIDATION_SEED)  # the server draws the same networks (stratified)
    also = f" and {len(archs)} validation networks (stratified, seed {VALIDATION_SEED})" if archs else ""
    console.print(
        f"jobs: {', '.join(f'{r.job_id} ({r.label})' for r in runs)}: FBNet {resolution}x{resolution}, "
        f"{len(entries)} entries each{also}, 1 thread"
    )

    apart = _apart_archs(space, limit)
    cache = ArtifactCache()
    wanted = export_jobs(space, entries, [*archs, *apart.values()])
    t0 = time.perf_counter()
    missing = sum(1 for target, fmt in wanted if cache.lookup(target, fmt) is None)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with live_progress(Progress(*columns, console=console, transient=True)) as progress:
        task = progress.add_task(f"export ({missing} not cached)", total=len(wanted))
        export_many(cache, wanted, on_progress=lambda done, _total: progress.update(task, completed=done))
    phases["export"] = time.perf_counter() - t0
    console.print(f"export: {missing} artifacts exported in {phases['export']:.1f} s (cache {cache.root})")

    for run in runs:
        t0 = time.perf_counter()
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"{run.label}: preparing", total=len(entries) + len(archs))
            config = AgentConfig(
                server=url,
                token=device_token,
                runtime=run.runtime,
                threads=1,
                job_id=run.job_id,
                once=True,
                patience_s=60.0,
                name=f"quickstart-{run.runtime}",
                calm=CalmSettings.from_wait(calm_wait),
            )
            try:
                Agent(config, hooks=QuickHooks(progress, task, run), cache=cache).run()
            except AgentError as exc:
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(1) from None
        run.wall_s = time.perf_counter() - t0
        phases[f"measuring {run.label}"] = run.wall_s
        with HwlutClient(url, token=device_token) as client:
            if archs:
                try:
                    run.accuracy = client.accuracy(name, lut=run.job_id)
                except NotFound:
                    console.print(f"[yellow]{run.label}: no accuracy report (the validation networks failed?)[/]")
            text = client.lut_text(name, run.job_id)
        run.lut = LatencyTable.from_dict(json.loads(text))
        run.path = out / f"{name}-fbnet{resolution}-{run.runtime}.json"
        run.path.parent.mkdir(parents=True, exist_ok=True)
        run.path.write_text(text)  # with the server's accuracy report in its provenance
        also = f" and {len(archs)} validation networks" if archs else ""
        console.print(f"{run.label}: {len(run.lut.entries)} entries{also} in {run.wall_s:.1f} s → {run.path}")

    if apart:
        _measure_apart(console, runs, apart, protocol, cache)
    summary(console, space, runs)
    accuracy_summary(console, runs, quick=quick)
    apart_summary(console, runs)
    first = runs[0]
    key = space.layers[len(space.layers) // 2].entry("k3_e6").key
    if key not in first.lut.entries and first.lut.entries:  # a --limit run
        key = next(iter(first.lut.entries))
    arch = ",".join(["k3_e6"] * len(space.layers))
    say = functools.partial(console.print, soft_wrap=True)  # commands stay on one line, copy-pasteable
    total = time.perf_counter() - started
    say(f"\n{phase_line(phases, total)}", highlight=False)
    say(f"[bold]Done in {total:.0f} s.[/bold] Where to look next:")
    say(f"  server        {url}  (API docs: {url}/docs)")
    say(f"  one entry     curl -s {url}/v1/devices/{name}/luts/{first.job_id}/entries/{key}")
    if first.accuracy is not None:
        say(f"  accuracy      curl -s {url}/v1/devices/{name}/luts/{first.job_id}/accuracy")
    say(
        f"  a network     curl -s -X POST {url}/v1/devices/{name}/luts/{first.job_id}/latency "
        f"-H 'content-type: application/json' -d '{{\"arch\": \"{arch}\"}}'"
    )
    for run in runs:
        say(f"  LUT file      {run.path}  ({run.label})")
    say(
        f"  search        hwlut search --lut {first.path} --proxy digits --epochs 9 --width-mult 0.25 "
        "--batch-size 32 --max-steps 6 --threads 1 --out runs/quick  (about 3.5 min)"
    )
