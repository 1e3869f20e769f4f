"""LUTs: a table read from a file stored as an import job, a device's LUT by reference, its entries in memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from searchspace import Entry, SpaceSpec
from searchspace.fields import FieldError, check_stats

from ..errors import Invalid, NotFound
from ..formats import Table, TableRow
from ..models import Device, Job, JobStatus, LutEntry, utcnow
from ..snapshots import LutSnapshot
from .changes import mark_luts_changed
from .devices import get_device
from .jobs import get_job, get_or_create_space

__all__ = ["covers_space", "entry_row", "import_table", "lut_snapshot", "resolve_lut"]


def entry_row(
    *,
    job_id: int,
    key: str,
    entry: Entry | None,
    latency_us: float,
    stats: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
    work_item_id: int | None = None,
) -> LutEntry:
    fields = entry.fields() if entry else {}
    return LutEntry(
        job_id=job_id,
        key=key,
        entry_key=entry.key if entry else None,
        latency_us=latency_us,
        stats=dict(stats),
        source=dict(source) if source is not None else None,
        work_item_id=work_item_id,
        **fields,
    )


def import_table(*, session: Session, device: Device, table: Table, space: SpaceSpec | None = None) -> Job:
    """Store a table read from a file as a complete LUT (an import job) of ``device``."""
    space = space or table.space
    seen: dict[str, str] = {}
    for row in table.rows:
        try:  # the statistics a file carries pass the checks an upload's do (types, ranges, order)
            check_stats({"median": row.latency_us, **row.stats}, f"entries[{row.key!r}].stats")
        except FieldError as exc:
            raise Invalid(exc.where, exc.message) from None
        if row.entry is not None:
            if row.entry.key in seen:
                raise Invalid("entries", f"{row.key!r} and {seen[row.entry.key]!r} are the same entry {row.entry.key}")
            seen[row.entry.key] = row.key
    space_row = get_or_create_space(session=session, spec=space) if space else None
    now = utcnow()
    job = Job(
        device_id=device.id,
        space_id=space_row.id if space_row else None,
        kind="import",
        status=JobStatus.COMPLETE,
        resolution=space.resolution if space else None,
        runtime=str((table.device or {}).get("runtime", "")) if isinstance(table.device, Mapping) else "",
        source_format=table.format,
        provenance={**table.provenance, **({"device": table.device} if table.device else {})},
        overhead_us=table.overhead_us,
        completed_at=now,
    )
    session.add(job)
    session.flush()
    for row in table.rows:
        session.add(
            entry_row(
                job_id=job.id,
                key=row.key,
                entry=row.entry,
                latency_us=row.latency_us,
                stats=row.stats,
                source=row.source,
            )
        )
    session.flush()
    mark_luts_changed(session)
    return job


def covers_space(*, session: Session, job: Job) -> bool:
    """Whether the job's stored entries hold every distinct entry of its space (a job without a space: yes).

    A complete profile job not restricted with ``entries`` measured them all;
    an import or a restricted job is checked against its stored rows.
    """
    if job.space is None:
        return True
    if job.kind == "profile" and not (job.options or {}).get("entries"):
        return True
    present = set(session.scalars(select(LutEntry.entry_key).where(LutEntry.job_id == job.id)))
    return all(e.key in present for e in SpaceSpec.from_dict(job.space.spec).distinct_entries())


def resolve_lut(*, session: Session, device: str, ref: str | int) -> Job:
    """The LUT ``ref`` of a device: a job id, or ``latest`` (the newest complete LUT holding its whole space).

    ``latest`` skips partial LUTs (an import lacking entries, a job restricted
    to some entries); a device with only partial ones is :class:`NotFound`
    naming them, so the caller picks one by its job id.
    """
    dev = get_device(session=session, name=device)
    if ref == "latest":
        partial: list[int] = []
        for job in session.scalars(
            select(Job)
            .where(Job.device_id == dev.id, Job.status == JobStatus.COMPLETE)
            .order_by(Job.completed_at.desc(), Job.id.desc())
        ):
            if covers_space(session=session, job=job):
                return job
            partial.append(job.id)
        if partial:
            ids = ", ".join(str(i) for i in partial[:5]) + (", ..." if len(partial) > 5 else "")
            raise NotFound(
                "lut",
                f"device {device!r} has only partial LUTs (job {ids}: not every entry of the space), "
                f"so 'latest' names none; pick one by its job id (--job {partial[0]})",
            )
        raise NotFound("lut", f"device {device!r} has no complete LUT yet")
    try:
        job_id = int(ref)
    except ValueError:
        raise Invalid("lut", f"expected a job id or 'latest', got {ref!r}") from None
    if not 0 < job_id < 2**31:  # no row has such an id (and the database could not even compare it)
        raise NotFound("lut", f"no job {job_id} of device {device!r}")
    return get_job(session=session, job_id=job_id, device=dev)


def lut_snapshot(*, session: Session, job: Job) -> LutSnapshot:
    """Load a LUT's entries (a complete LUT never changes: callers may cache the result)."""
    rows = []
    for r in session.scalars(select(LutEntry).where(LutEntry.job_id == job.id).order_by(LutEntry.id)):
        entry = None
        if r.entry_key is not None:
            entry = Entry(r.op, r.cin, r.cout, r.h, r.w, r.stride, r.kernel, r.expansion, r.groups)  # type: ignore[arg-type]
        rows.append(TableRow(r.key, entry, r.latency_us, r.stats, r.source))
    space = SpaceSpec.from_dict(job.space.spec) if job.space else None
    covers = True  # a LUT is complete when it holds every distinct entry of its space (imports, restricted jobs)
    if space is not None and not (job.kind == "profile" and not (job.options or {}).get("entries")):
        present = {row.entry.key for row in rows if row.entry is not None}
        covers = all(e.key in present for e in space.distinct_entries())
    return LutSnapshot(
        job_id=job.id,
        device=job.device.name,
        status=job.status,
        complete=job.status == JobStatus.COMPLETE and covers,
        space=space,
        source_format=job.source_format,
        provenance=dict(job.provenance),
        overhead_us=job.overhead_us,
        rows=rows,
        accuracy=job.accuracy,
    )
