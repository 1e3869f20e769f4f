"""Profiling jobs: their search space, work items and validation plans; lookups, progress and status.

A job's work items are the distinct entries of its space (or some of them)
and any validation networks (items of kind ``network``), spread evenly
among the entries in id order so that every claimed batch holds both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from searchspace import (
    DEFAULT_NETWORKS,
    ArchitectureError,
    Entry,
    EntryKeyError,
    SpaceSpec,
    network_item_key,
    parse_key,
    plan_networks,
)
from searchspace.fields import FieldError, is_whole
from searchspace.jobs import JobSettings
from searchspace.validation import DRAWS, MAX_VALIDATION_NETWORKS, MAX_VALIDATION_SEED

from ..errors import Conflict, Invalid, NotFound
from ..guard import MAX_INT32
from ..models import Device, Job, JobStatus, Space, WorkItem, WorkStatus, utcnow
from .changes import mark_luts_changed

__all__ = [
    "JOB_STATUSES",
    "MAX_VALIDATION_NETWORKS",
    "MAX_VALIDATION_SEED",
    "cancel_job",
    "create_job",
    "find_jobs",
    "get_job",
    "get_or_create_space",
    "interleave",
    "job_progress",
    "job_settings",
    "list_jobs",
    "network_rows",
    "refresh_status",
    "validation_networks",
    "validation_progress",
]


def get_or_create_space(*, session: Session, spec: SpaceSpec) -> Space:
    """The stored row of ``spec`` (one per spec hash)."""
    digest = spec.spec_hash
    space = session.scalar(select(Space).where(Space.spec_hash == digest))
    if space is None:
        space = Space(name=spec.name, spec_hash=digest, spec=spec.to_dict())
        session.add(space)
        session.flush()
    return space


def validation_networks(
    spec: SpaceSpec, *, n: Any, seed: Any, archs: Any, where: str, draw: Any = "stratified"
) -> tuple[list[str], int]:
    """The plan's networks (named first, then ``n`` drawn with ``seed`` as ``draw`` says) and how many were named.

    ``draw``: :func:`searchspace.plan_networks` (``stratified`` over the
    MAC-based proxy LUT, or ``uniform``). Errors are :class:`Invalid` naming
    ``{where}n``, ``{where}seed``, ``{where}draw`` or ``{where}archs[i]``.
    """
    if not is_whole(n) or not 0 <= n <= MAX_VALIDATION_NETWORKS:
        raise Invalid(f"{where}n", f"expected an integer from 0 to {MAX_VALIDATION_NETWORKS}, got {n!r}")
    if not is_whole(seed) or not 0 <= seed <= MAX_VALIDATION_SEED:
        raise Invalid(f"{where}seed", f"expected an integer from 0 to {MAX_VALIDATION_SEED}, got {seed!r}")
    if isinstance(archs, str) or not isinstance(archs, Sequence):
        raise Invalid(f"{where}archs", "expected a list of architectures")
    if len(archs) > MAX_VALIDATION_NETWORKS:
        raise Invalid(f"{where}archs", f"at most {MAX_VALIDATION_NETWORKS} named networks")
    named: list[str] = []
    for i, arch in enumerate(archs):
        if not isinstance(arch, str):
            raise Invalid(f"{where}archs[{i}]", "expected an architecture string (candidates joined by commas)")
        try:
            named.append(spec.decode(arch).encode())
        except ArchitectureError as exc:
            raise Invalid(f"{where}archs[{i}]", str(exc)) from None
    named = list(dict.fromkeys(named))
    if draw not in DRAWS:
        raise Invalid(f"{where}draw", f"expected one of {', '.join(DRAWS)}, got {draw!r}")
    return plan_networks(spec, n, seed, named, draw), len(named)


def network_rows(
    job_id: int, archs: Sequence[str], named: int, *, seed: int, first_index: int, now: datetime
) -> list[dict[str, Any]]:
    """Work-item rows of validation networks (kind ``network``), numbered from ``first_index``."""
    return [
        {
            "job_id": job_id,
            "kind": "network",
            "key": network_item_key(arch),
            "fields": {"arch": arch, "index": first_index + i, "seed": seed, "named": i < named},
            "status": WorkStatus.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for i, arch in enumerate(archs)
    ]


def interleave(entries: Sequence[Any], networks: Sequence[Any]) -> list[Any]:
    """``entries`` with ``networks`` spread evenly among them (network *j* after ``(j+1)·E/(N+1)`` entries).

    Claims take items in id order, so every claimed batch of an interleaved job
    holds entries and networks alike, measured in the same passes.
    """
    out: list[Any] = []
    e, n = len(entries), len(networks)
    j = 0
    for i in range(e + 1):
        while j < n and (j + 1) * e // (n + 1) <= i:
            out.append(networks[j])
            j += 1
        if i < e:
            out.append(entries[i])
    return out


def create_job(
    *,
    session: Session,
    device: Device,
    spec: SpaceSpec,
    settings: JobSettings | Mapping[str, Any],
    lease_seconds: float = 300.0,
    max_attempts: int = 3,
    entries: Sequence[str] | None = None,
    validation: Mapping[str, Any] | None = None,
) -> Job:
    """A profiling job whose work items are the distinct entries of ``spec`` (or only ``entries``, keys).

    ``settings`` say what the job is measured with: a
    :class:`~searchspace.jobs.JobSettings`, or its stored form
    (``{"runtime", "threads", "options"}``, as a request carries it), checked
    here (:func:`job_settings`): a bad value is :class:`Invalid` naming the
    field (``runtime``, ``threads``, ``options.cache_mode``,
    ``options.protocol.time_cap_s``...). The job stores them as
    :meth:`JobSettings.to_dict` gives them.

    A restricted job records its canonical keys in ``options["entries"]``.

    ``validation`` (``{"n": int, "seed": int, "archs": [str], "draw": str}``;
    ``n`` defaults to :data:`searchspace.DEFAULT_NETWORKS`, ``seed`` to 0,
    ``draw`` to ``stratified``) adds validation networks: the named ``archs``
    and ``n`` architectures drawn with ``seed`` (:func:`searchspace.plan_networks`),
    as work items of kind ``network`` spread evenly among the entries in id
    order. A restricted job also measures every entry its networks need (their
    LUT sums must be complete). Errors name ``validation.n``, ``validation.seed``,
    ``validation.draw``, ``validation.archs[i]``; nothing is written then.
    """
    if not isinstance(settings, JobSettings):
        settings = job_settings(settings)
    options: dict[str, Any] = settings.options()
    wanted = spec.distinct_entries()
    chosen: dict[str, Entry] | None = None
    if entries is not None:
        by_key = {e.key: e for e in wanted}
        chosen = {}
        for i, key in enumerate(entries):
            try:
                canonical = parse_key(key).key
            except EntryKeyError as exc:
                raise Invalid(f"entries[{i}]", str(exc)) from None
            if canonical not in by_key:
                raise Invalid(f"entries[{i}]", f"{canonical} is no distinct entry of space {spec.name!r}")
            chosen[canonical] = by_key[canonical]
    networks: list[str] = []
    named = 0
    plan: dict[str, Any] | None = None
    if validation is not None:
        given = dict(validation)
        for name in given:
            if name not in ("n", "seed", "archs", "draw"):
                raise Invalid(f"validation.{name}", "unknown field (known: n, seed, archs, draw)")
        n, seed, draw = given.get("n", DEFAULT_NETWORKS), given.get("seed", 0), given.get("draw", "stratified")
        networks, named = validation_networks(
            spec, n=n, seed=seed, archs=given.get("archs") or [], where="validation.", draw=draw
        )
        if networks:
            plan = {"n": n, "seed": seed, "draw": draw, "archs": networks[:named], "networks": len(networks)}
    if chosen is not None:
        for arch in networks:  # a network's LUT sum needs every one of its entries
            for entry in spec.entries_of(arch):
                chosen.setdefault(entry.key, entry)
        wanted = list(chosen.values())
        options["entries"] = list(chosen)
    if plan is not None:
        options["validation"] = [plan]
    _check_storable(wanted)
    space = get_or_create_space(session=session, spec=spec)
    job = Job(
        device_id=device.id,
        space_id=space.id,
        kind="profile",
        status=JobStatus.PENDING,
        resolution=spec.resolution,
        runtime=settings.runtime,
        threads=settings.threads,
        options=options,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
    )
    session.add(job)
    session.flush()
    now = utcnow()
    entry_rows = [
        {
            "job_id": job.id,
            "kind": "entry",
            "key": e.key,
            "fields": e.fields(),
            "status": WorkStatus.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for e in wanted
    ]
    seed = plan["seed"] if plan else 0
    net_rows = network_rows(job.id, networks, named, seed=seed, first_index=0, now=now)
    session.execute(insert(WorkItem), interleave(entry_rows, net_rows))  # ids follow this order
    return job


def _check_storable(entries: Sequence[Entry]) -> None:
    """Refuse a space whose entries no LUT row can hold (a channel count beyond 32 bits, a key too long).

    Its uploads would all fail; the job is refused instead (:class:`Invalid` on ``space``).
    """
    for entry in entries:
        if len(entry.key) > 255:
            raise Invalid("space", f"entry {entry.key[:60]}...: key longer than 255 characters")
        for name, value in entry.fields().items():
            if isinstance(value, int) and abs(value) > MAX_INT32:
                raise Invalid("space", f"entry {entry.key[:80]}: {name}={value} does not fit a 32-bit integer")


def job_settings(doc: Mapping[str, Any]) -> JobSettings:
    """The settings a request gives (``{"runtime", "threads", "options"}``), or :class:`Invalid` naming the field.

    ``options`` may hold settings only (the store writes the job's
    ``entries`` and ``validation`` there itself).
    """
    try:
        return JobSettings.from_dict(doc)
    except FieldError as exc:
        raise Invalid(exc.where, exc.message) from None


def get_job(*, session: Session, job_id: int, device: Device | None = None) -> Job:
    """A job by id (of ``device`` when given), or :class:`NotFound`."""
    job = session.get(Job, job_id)
    if job is None or (device is not None and job.device_id != device.id):
        raise NotFound("job_id", f"no job {job_id}" + (f" of device {device.name!r}" if device else ""))
    return job


def list_jobs(*, session: Session, device: Device | None = None) -> list[Job]:
    """Jobs (of one device), newest first."""
    query = select(Job).order_by(Job.id.desc())
    if device is not None:
        query = query.where(Job.device_id == device.id)
    return list(session.scalars(query))


#: The statuses :func:`find_jobs` filters by.
JOB_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED)


def find_jobs(
    *, session: Session, device: Device | None = None, status: str | None = None, limit: int = 100
) -> list[Job]:
    """Jobs of every device (or of ``device``; with ``status``), newest first, at most ``limit``."""
    if status is not None and status not in JOB_STATUSES:
        raise Invalid("status", f"unknown job status {status!r}; known: {', '.join(JOB_STATUSES)}")
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if device is not None:
        query = query.where(Job.device_id == device.id)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(query))


def cancel_job(*, session: Session, job: Job, now: datetime) -> Job:
    """Cancel an unfinished job: agents get no more of its items, and it never becomes a LUT.

    Results already measured stay stored; cancelling a cancelled job changes
    nothing; a complete or failed job is a :class:`Conflict` (nothing is left to cancel).
    """
    if job.status == JobStatus.CANCELLED:
        return job
    if job.status in (JobStatus.COMPLETE, JobStatus.FAILED) or job.kind != "profile":
        what = "an imported LUT" if job.kind != "profile" else f"{job.status}"
        raise Conflict("job_id", f"job {job.id} is {what}; only a pending or running job can be cancelled")
    job.status = JobStatus.CANCELLED
    job.completed_at = now
    session.flush()
    return job


def _progress(*, session: Session, job: Job, kind: str) -> dict[str, int]:
    counts = {s: 0 for s in (WorkStatus.PENDING, WorkStatus.LEASED, WorkStatus.DONE, WorkStatus.FAILED)}
    rows = session.execute(
        select(WorkItem.status, func.count())
        .where(WorkItem.job_id == job.id, WorkItem.kind == kind)
        .group_by(WorkItem.status)
    )
    for status, count in rows:
        counts[status] = count
    counts["total"] = sum(counts.values())
    return counts


def job_progress(*, session: Session, job: Job) -> dict[str, int]:
    """The job's *entry* items counted by status (every status present, ``total`` too).

    Validation networks are counted apart (:func:`validation_progress`): a
    job's status and its LUT depend on its entries only.
    """
    return _progress(session=session, job=job, kind="entry")


def validation_progress(*, session: Session, job: Job) -> dict[str, int]:
    """The job's validation networks (items of kind ``network``) counted by status."""
    return _progress(session=session, job=job, kind="network")


def refresh_status(*, session: Session, job: Job, now: datetime) -> None:
    """The job's status from its entry items; ``completed_at`` is set once, when it finishes."""
    if job.status == JobStatus.CANCELLED:  # a cancelled job stays so, whatever a late upload brings
        return
    progress = job_progress(session=session, job=job)
    if progress[WorkStatus.PENDING] or progress[WorkStatus.LEASED]:
        if progress[WorkStatus.DONE] or progress[WorkStatus.LEASED] or progress[WorkStatus.FAILED]:
            job.status = JobStatus.RUNNING
        return
    finished = JobStatus.FAILED if progress[WorkStatus.FAILED] else JobStatus.COMPLETE
    if job.status != finished or job.completed_at is None:
        job.status = finished
        job.completed_at = now
        mark_luts_changed(session)
        if finished == JobStatus.COMPLETE and (job.options or {}).get("fewshot"):
            from .fewshot import materialise  # a few-shot job: the server predicts the entries not measured

            materialise(session=session, job=job, now=now)
