"""``hwlut agent``: serve one registered device's profiling jobs from an hwlut server.

Prints one line per event (``measured …``, ``uploaded …``, messages), so a
log or a test can follow it. SIGTERM or Ctrl-C finishes the current pass,
hands the rest of the batch back, uploads and exits; a second one stops at
once (what was measured stays in the outbox under ``$HWLUT_HOME/agents``).
Exit status: 0 done, 1 the server stayed away or results are left in the
outbox, 2 refused (the job's runtime settings are not this agent's).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from searchspace.jobs import RUNTIMES

from .config import configured
from .errors import EXIT_FAILED, EXIT_REFUSED, fail
from .options import CalmWaitOpt, OptimizationOpt, choices
from .remote import ServerOpt, server_url

__all__ = ["CliHooks", "agent"]


class CliHooks:
    """Agent events as plain lines on stdout (flushed, so a pipe sees them at once)."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

    def _say(self, text: str) -> None:
        typer.echo(text)

    def message(self, text: str) -> None:
        """A message of the agent."""
        self._say(f"agent: {text}")

    def job_started(self, job: dict[str, Any], runtime: Any, todo: int) -> None:
        """A job taken."""
        settings = runtime.settings()
        networks = (job.get("validation") or {}).get("pending", 0)
        also = f", {networks} validation networks" if networks else ""
        self._say(
            f"job {job['id']}: {job['space_name']} at {job['resolution']}, {settings['runtime']} "
            f"{settings.get('runtime_version', '')} with {settings['threads']} thread(s); {todo} entries to measure"
            + also
        )

    def batch_started(self, job_id: int, lease_id: str, keys: Sequence[str]) -> None:
        """A batch claimed."""
        self._say(f"claimed job={job_id} lease={lease_id[:8]} items={len(keys)}")

    def passed(self, job_id: int, report: Any) -> None:
        """A pass ended (shown with --verbose)."""
        if self.verbose:
            state = "accepted" if report.accepted else "redone"
            drift = f"{report.drift:+.1%}"
            self._say(f"pass job={job_id} index={report.index} {state} drift={drift} active={report.active}")

    def measured(self, job_id: int, item_id: int, key: str, stats: dict[str, Any]) -> None:
        """An entry measured (and safe in the outbox)."""
        ci = stats.get("ci_rel")
        self._say(
            f"measured job={job_id} item={item_id} key={key} median_us={stats['median']:.2f} "
            f"ci={'-' if ci is None else f'{ci:.2%}'} stop={stats.get('stop_reason')}"
        )

    def uploaded(self, job_id: int, accepted: int, duplicates: int) -> None:
        """Results acknowledged by the server."""
        self._say(f"uploaded job={job_id} accepted={accepted} duplicates={duplicates}")


def agent(
    server: ServerOpt = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="HWLUT_TOKEN",
            help="The device's token (default: `hwlut config set token`).",
            show_default=False,
        ),
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="ort, tflite or adb (default: each job's own); a job of another is refused.",
            autocompletion=choices(RUNTIMES),
            metavar="RUNTIME",
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Runtime threads (default: the job's).")] = None,
    xnnpack: Annotated[bool | None, typer.Option("--xnnpack/--no-xnnpack", help="LiteRT/adb: XNNPACK.")] = None,
    optimization: OptimizationOpt = None,
    adb_serial: Annotated[
        list[str] | None, typer.Option("--adb-serial", help="A phone's serial (repeat: one worker per phone).")
    ] = None,
    adb_binary: Annotated[str | None, typer.Option(help="benchmark_model's path on the phone.")] = None,
    adb_cpu_mask: Annotated[str | None, typer.Option(help="taskset mask on the phone, e.g. f0.")] = None,
    job: Annotated[int | None, typer.Option("--job", help="Serve only this job.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Exit when no work is left.")] = False,
    batch: Annotated[int, typer.Option(min=1, help="Items claimed (and measured interleaved) per lease.")] = 32,
    name: Annotated[str | None, typer.Option(help="Agent name shown on leases (default: host-pid).")] = None,
    patience: Annotated[
        float, typer.Option(min=0.0, help="Seconds to keep retrying while the server is unreachable.")
    ] = 600.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="A line per pass too.")] = False,
    calm_wait: CalmWaitOpt = 20.0,
) -> None:
    """Claim, measure and upload a registered device's work (see the README's "Device agent").

    Example: hwlut agent --server http://10.0.0.5:8000 --token hwlut_… --once
    """
    from profiler.agent import Agent, AgentConfig, AgentError, SettingsMismatch
    from profiler.calm import CalmSettings

    token = token or configured("token")
    if not token:
        raise typer.BadParameter(
            "the device's token is needed: --token, HWLUT_TOKEN or `hwlut config set token` "
            "(hwlut device register/token print one)",
            param_hint="--token",
        )
    adb_options = {k: v for k, v in (("benchmark_binary", adb_binary), ("cpu_mask", adb_cpu_mask)) if v}
    try:
        config = AgentConfig(
            server=server_url(server),
            token=token,
            runtime=runtime,
            threads=threads,
            xnnpack=xnnpack,
            optimization=optimization,
            adb_serials=tuple(adb_serial or ()),
            adb_options=adb_options,
            job_id=job,
            name=name,
            batch_size=batch,
            once=once,
            patience_s=patience,
            calm=CalmSettings.from_wait(calm_wait),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    worker = Agent(config, hooks=CliHooks(verbose))
    signals = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["count"] += 1
        if signals["count"] == 1:
            typer.echo(f"agent: {signal.Signals(signum).name}: finishing the pass, handing back the rest", err=True)
            worker.stop()
        else:
            typer.echo("agent: stopping now; measured results stay in the outbox", err=True)
            worker.abort()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        measured = worker.run()
    except SettingsMismatch as exc:
        fail(str(exc), EXIT_REFUSED)
    except AgentError as exc:
        fail(str(exc), EXIT_FAILED)
    typer.echo(f"agent: done; {measured} entries measured, {worker.uploaded_count} uploaded")
