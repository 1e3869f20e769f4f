"""Profiling jobs: create one for a device, see its status and progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from lut_store import crud
from lut_store.models import WorkItem, WorkStatus, utcnow

from ..convert import job_public
from ..deps import JobIdPath, ReaderDep, SessionDep, WritableDevice, WritableJob, WriteSessionDep
from ..errors import ApiError, body_loc, error_responses
from ..schemas import FailedItem, JobCreate, JobPublic
from ..spaces import resolve_space

router = APIRouter(tags=["jobs"], responses=error_responses(401, 403, 404, 422))


@router.post("/v1/devices/{name}/jobs", status_code=201)
def create_job(body: JobCreate, device: WritableDevice, session: WriteSessionDep) -> JobPublic:
    """A profiling job whose work items are the distinct entries of the space, and any validation networks.

    ``runtime``, ``threads`` and ``options`` are the job's settings; one the
    agents could not use (an unknown runtime, cache mode, protocol field...)
    is refused with 422 naming it.

    ``validation`` adds whole networks (``archs`` named, ``n`` drawn with
    ``seed``) as work items spread among the entries: the agents measure them
    in the same batches, and the server computes the LUT's accuracy when the
    entries are complete and the networks measured. The job's status and its
    LUT depend on the entries only.
    """
    try:
        settings = body.settings()
    except crud.Invalid as exc:
        raise ApiError(422, body_loc(exc.field), exc.message) from None
    spec = resolve_space(body.space, body.resolution)
    try:
        job = crud.create_job(
            session=session,
            device=device,
            spec=spec,
            settings=settings,
            lease_seconds=body.lease_seconds,
            max_attempts=body.max_attempts,
            entries=body.entries,
            validation=body.validation.model_dump() if body.validation is not None else None,
        )
    except crud.Invalid as exc:
        if exc.field.startswith("validation"):
            raise ApiError(422, body_loc(exc.field), exc.message) from None
        raise
    return job_public(session=session, job=job)


@router.get("/v1/devices/{name}/jobs", dependencies=[ReaderDep])
def list_jobs(name: str, session: SessionDep) -> list[JobPublic]:
    """A device's jobs and imported LUTs, newest first."""
    device = crud.get_device(session=session, name=name)
    return [job_public(session=session, job=j) for j in crud.list_jobs(session=session, device=device)]


@router.get("/v1/jobs/{job_id}", dependencies=[ReaderDep])
def show_job(job_id: JobIdPath, session: SessionDep) -> JobPublic:
    """A job's status and progress."""
    return job_public(session=session, job=crud.get_job(session=session, job_id=job_id))


@router.get("/v1/jobs/{job_id}/failed", dependencies=[ReaderDep])
def failed_items(job_id: JobIdPath, session: SessionDep) -> list[FailedItem]:
    """Items that failed for good, with their last error."""
    job = crud.get_job(session=session, job_id=job_id)
    items = session.scalars(
        select(WorkItem).where(WorkItem.job_id == job.id, WorkItem.status == WorkStatus.FAILED).order_by(WorkItem.id)
    )
    return [FailedItem(item_id=i.id, key=i.key, attempts=i.attempts, error=i.last_error) for i in items]


@router.get("/v1/jobs", dependencies=[ReaderDep])
def find_jobs(
    session: SessionDep,
    device: Annotated[str | None, Query(max_length=128, description="only this device's jobs")] = None,
    status: Annotated[
        str | None, Query(max_length=16, description=f"only jobs of this status: {', '.join(crud.JOB_STATUSES)}")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")] = 100,
) -> list[JobPublic]:
    """Jobs and imported LUTs of every device (or of one), newest first: what `hwlut job list` shows."""
    dev = crud.get_device(session=session, name=device) if device is not None else None
    try:
        jobs = crud.find_jobs(session=session, device=dev, status=status, limit=limit)
    except crud.Invalid as exc:
        raise ApiError(422, ["query", exc.field], exc.message) from None
    return [job_public(session=session, job=j) for j in jobs]


@router.post("/v1/jobs/{job_id}/cancel", responses=error_responses(409))
def cancel_job(job: WritableJob, session: WriteSessionDep) -> JobPublic:
    """Cancel a pending or running job (its device's token or admin): agents get none of its items any more.

    Results already uploaded stay; a job that finished (complete, failed) is a 409.
    """
    crud.cancel_job(session=session, job=job, now=utcnow())
    return job_public(session=session, job=job)
