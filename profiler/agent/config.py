"""An agent's settings and which jobs it may serve: :class:`AgentConfig`, job matching, the errors.

Pure functions of a job record as the server shows it (a dict) and the
agent's configuration: :func:`job_settings` reads the job's settings
(:class:`searchspace.jobs.JobSettings`), :func:`runtime_for_job` builds the runtime a job asks
for or refuses it (:class:`SettingsMismatch`) *before* anything is measured,
:func:`earlier_mismatches` compares the checked provenance of a job's
earlier uploads with this agent's, :func:`job_is_open` and friends read a
job's progress. Nothing here talks to the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchspace import ArchitectureError, SpaceSpec, plan_networks
from searchspace.fields import FieldError
from searchspace.jobs import JobSettings
from searchspace.provenance import job_mismatches

from ..calm import CalmSettings
from ..protocol import PassReport, ProtocolConfig
from ..runtimes import Runtime, canonical_runtime, make_runtime, with_cache_mode

__all__ = [
    "AgentConfig",
    "AgentError",
    "AgentHooks",
    "SettingsMismatch",
    "claimable",
    "earlier_mismatches",
    "job_is_open",
    "job_protocol",
    "job_settings",
    "runtime_for_job",
    "unmeasured_networks",
    "validation_open",
]


class AgentError(RuntimeError):
    """The agent cannot go on (the server stayed away past its patience, the token is refused, ...)."""


class SettingsMismatch(AgentError):
    """The job asks for runtime settings this agent does not measure with: refused before measuring."""


def job_settings(job: dict[str, Any]) -> JobSettings:
    """A job's settings (:class:`searchspace.jobs.JobSettings`), or :class:`SettingsMismatch` naming the bad one.

    A job stored by an older server may hold option keys that are no
    setting: they are passed over, as they always were.
    """
    try:
        return JobSettings.from_dict(job, strict=False)
    except FieldError as exc:
        raise SettingsMismatch(f"job {job.get('id')}: its settings cannot be used: {exc}") from None


def job_protocol(job: dict[str, Any]) -> ProtocolConfig:
    """The protocol a job asks for (``options["protocol"]``), default settings otherwise."""
    given = job_settings(job).protocol
    try:
        return ProtocolConfig(**given)
    except (TypeError, ValueError) as exc:
        raise SettingsMismatch(f"job {job.get('id')}: its protocol options cannot be used: {exc}") from None


@dataclass(frozen=True)
class AgentConfig:
    """How an agent runs. ``None`` settings take the job's value; a given one must equal it."""

    server: str
    token: str
    runtime: str | None = None
    threads: int | None = None
    xnnpack: bool | None = None
    optimization: str | None = None
    adb_serials: tuple[str, ...] = ()
    adb_options: dict[str, Any] = field(default_factory=dict)
    job_id: int | None = None
    name: str | None = None
    batch_size: int = 32
    once: bool = False
    patience_s: float = 600.0
    idle_poll_s: float = 5.0
    heartbeat_s: float | None = None
    home: Path | None = None
    calm: CalmSettings | None = None  # a calm gate before each lease's batch (profiler.calm); None: none

    def __post_init__(self) -> None:
        if self.runtime is not None and canonical_runtime(self.runtime) is None:
            raise ValueError(f"runtime: unknown runtime {self.runtime!r}; known: ort, tflite, adb")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")


class AgentHooks:
    """What an agent reports while it works; every method is optional (no-ops here)."""

    def message(self, text: str) -> None:
        """A line worth showing (a job taken, the server away, a refusal...)."""

    def job_started(self, job: dict[str, Any], runtime: Runtime, todo: int) -> None:
        """The agent serves ``job`` with ``runtime``; ``todo`` entries are not done yet."""

    def batch_started(self, job_id: int, lease_id: str, keys: Sequence[str]) -> None:
        """A batch was claimed and is being measured."""

    def passed(self, job_id: int, report: PassReport) -> None:
        """A pass of the current batch ended."""

    def measured(self, job_id: int, item_id: int, key: str, stats: dict[str, Any]) -> None:
        """An entry finished measuring and is safe in the outbox."""

    def uploaded(self, job_id: int, accepted: int, duplicates: int) -> None:
        """The server acknowledged results."""


def runtime_for_job(job: dict[str, Any], config: AgentConfig, serial: str | None = None) -> Runtime:
    """The runtime to measure ``job`` with, or :class:`SettingsMismatch` saying what differs.

    A setting the agent was given must equal the job's; one it was not given
    takes the job's (or the runtime's default). The runtime's own
    ``settings()`` are checked against the job's afterwards, so what is
    compared is what will actually be used.
    """
    settings = job_settings(job)
    wanted = settings.runtime_name
    problems: list[str] = []
    mine = canonical_runtime(config.runtime)
    if mine is not None and mine != wanted:
        problems.append(f"runtime: the job wants {wanted}, this agent runs {mine}")
    job_threads = settings.threads
    if config.threads is not None and job_threads is not None and config.threads != job_threads:
        problems.append(f"threads: the job wants {job_threads}, this agent runs {config.threads}")
    kwargs: dict[str, Any] = {"threads": config.threads or job_threads or 1}
    if wanted in ("tflite", "adb"):
        job_x = settings.xnnpack
        if config.xnnpack is not None and job_x is not None and job_x != config.xnnpack:
            problems.append(f"xnnpack: the job wants {job_x}, this agent runs {config.xnnpack}")
        kwargs["xnnpack"] = config.xnnpack if config.xnnpack is not None else (job_x if job_x is not None else True)
    elif config.xnnpack is not None:
        problems.append("xnnpack: only LiteRT and adb jobs have an XNNPACK setting")
    if wanted == "ort":
        job_o = settings.optimization
        if config.optimization is not None and job_o is not None and job_o != config.optimization:
            problems.append(f"optimization: the job wants {job_o}, this agent runs {config.optimization}")
        kwargs["optimization"] = config.optimization or job_o or "all"
    elif config.optimization is not None:
        problems.append("optimization: only onnxruntime jobs have an optimisation level")
    if wanted == "adb":
        kwargs.update(config.adb_options)
        if serial:
            kwargs["serial"] = serial
    if problems:
        raise SettingsMismatch(f"job {job['id']} refused before measuring: " + "; ".join(problems))
    try:
        runtime = with_cache_mode(make_runtime(wanted, **kwargs), settings.measured_cache_mode)
    except ValueError as exc:
        raise SettingsMismatch(f"job {job['id']} refused before measuring: {exc}") from None
    actual = runtime.settings()
    checks = {"threads": job_threads, "xnnpack": settings.xnnpack, "optimization": settings.optimization}
    for name, value in checks.items():
        if value is not None and name in actual and actual[name] != value:
            problems.append(f"{name}: the job wants {value!r}, the runtime reports {actual[name]!r}")
    if problems:
        raise SettingsMismatch(f"job {job['id']} refused before measuring: " + "; ".join(problems))
    return runtime


#: Checked provenance fields in which a job's earlier uploads and this agent's differ, less what differs
#: between identical devices sharing a job (a phone's serial; for adb the host driving it). The store runs
#: the same check on every upload (:func:`searchspace.provenance.job_mismatches`).
earlier_mismatches = job_mismatches


def validation_open(job: dict[str, Any]) -> int:
    """How many of a job's validation networks are still pending or leased (0 for a record without them)."""
    counts = job.get("validation") or {}
    return int(counts.get("pending", 0)) + int(counts.get("leased", 0))


def job_is_open(job: dict[str, Any]) -> bool:
    """Whether a job (as the server shows it) has work left: entries, or validation networks of a complete job."""
    if job.get("kind", "profile") != "profile":
        return False
    return job["status"] in ("pending", "running") or (job["status"] == "complete" and validation_open(job) > 0)


def claimable(job: dict[str, Any]) -> int:
    """Items of a job that are pending now (entries and validation networks)."""
    return int(job["progress"]["pending"]) + int((job.get("validation") or {}).get("pending", 0))


def unmeasured_networks(job: dict[str, Any], space: SpaceSpec) -> list[str]:
    """A job's validation networks when none is measured yet (drawn again from ``options["validation"]``).

    Exported with the entries before the first claim, in one grouped
    parallel export. Once some are measured, which are left is not known
    here: each claimed batch exports its own (:meth:`profiler.agent.job.JobState.prefetch_networks`).
    """
    counts = job.get("validation") or {}
    rounds = (job.get("options") or {}).get("validation")
    if not counts.get("pending") or counts.get("pending") != counts.get("total") or not isinstance(rounds, list):
        return []
    out: list[str] = []
    try:
        for plan in rounds:
            n, seed, named = int(plan.get("n", 0)), int(plan.get("seed", 0)), plan.get("archs") or []
            out += plan_networks(space, n, seed, named, str(plan.get("draw", "uniform")))  # stored without: uniform
    except (ArchitectureError, TypeError, ValueError, AttributeError):
        return []
    return list(dict.fromkeys(out))
