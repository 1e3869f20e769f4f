"""ORM rows and snapshots → API schemas."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lut_store.crud import job_progress, validation_progress
from lut_store.formats import TableRow
from lut_store.models import Job

from .schemas import EntryPublic, JobPublic, Progress

__all__ = ["entry_public", "job_public"]


def job_public(*, session: Session, job: Job) -> JobPublic:
    """A job with the progress of its entries and of its validation networks."""
    return JobPublic(
        id=job.id,
        device=job.device.name,
        kind=job.kind,
        status=job.status,
        space_name=job.space.name if job.space else None,
        space_hash=job.space.spec_hash if job.space else None,
        resolution=job.resolution,
        runtime=job.runtime,
        threads=job.threads,
        options=job.options,
        lease_seconds=job.lease_seconds,
        max_attempts=job.max_attempts,
        source_format=job.source_format,
        created_at=job.created_at,
        completed_at=job.completed_at,
        progress=Progress(**job_progress(session=session, job=job)),
        validation=Progress(**validation_progress(session=session, job=job)),
    )


def entry_public(row: TableRow) -> EntryPublic:
    """One LUT row."""
    return EntryPublic(
        key=row.key,
        entry_key=row.entry.key if row.entry else None,
        fields=row.entry.fields() if row.entry else None,
        latency_us=row.latency_us,
        stats=row.stats,
    )
