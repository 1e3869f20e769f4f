"""The agent protocol: who am I, claim work under a lease, heartbeat, upload results, hand back, report failures."""

from __future__ import annotations

from fastapi import APIRouter

from lut_store import crud
from lut_store.models import Device

from ..deps import WritableJob, WriterDep, WriteSessionDep
from ..errors import error_responses
from ..schemas import (
    ClaimRequest,
    FailureRequest,
    FailureResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    LeasePublic,
    ReleaseRequest,
    ReleaseResponse,
    UploadRequest,
    UploadResponse,
    WhoAmI,
    WorkItemPublic,
)

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["agent"], responses=error_responses(401, 403, 404, 409, 422))

identity = APIRouter(tags=["agent"], responses=error_responses(401, 403, 422))


@identity.get("/v1/whoami")
def whoami(writer: WriterDep, session: WriteSessionDep) -> WhoAmI:
    """The device a token belongs to (an agent needs only its token), or the admin."""
    if writer.admin:
        return WhoAmI(admin=True, device=None)
    device = session.get(Device, writer.device_id)
    return WhoAmI(admin=False, device=device.name if device else None)


@router.post("/claim")
def claim(body: ClaimRequest, job: WritableJob, session: WriteSessionDep) -> LeasePublic:
    """Lease up to ``max_items`` items; an expired lease's items are claimable again."""
    lease = crud.claim_items(
        session=session,
        job=job,
        agent=body.agent,
        max_items=body.max_items,
        lease_seconds=body.lease_seconds,
        lease_id=body.lease_id,
    )
    items = [
        WorkItemPublic(item_id=i.id, kind=i.kind, key=i.key, fields=i.fields, attempts=i.attempts) for i in lease.items
    ]
    return LeasePublic(lease_id=lease.lease_id, expires_at=lease.expires_at, items=items)


@router.post("/heartbeat")
def heartbeat(body: HeartbeatRequest, job: WritableJob, session: WriteSessionDep) -> HeartbeatResponse:
    """Extend a lease."""
    count, expires = crud.heartbeat(session=session, job=job, lease_id=body.lease_id, lease_seconds=body.lease_seconds)
    return HeartbeatResponse(items=count, expires_at=expires)


@router.post("/results")
def upload(body: UploadRequest, job: WritableJob, session: WriteSessionDep) -> UploadResponse:
    """Store results of leased items; a retried upload is answered without storing twice."""
    accepted, duplicates = crud.upload_results(
        session=session,
        job=job,
        lease_id=body.lease_id,
        results=[r.model_dump(exclude_none=True) for r in body.results],
        provenance=body.provenance,
        overhead_us=body.overhead_us,
    )
    return UploadResponse(accepted=accepted, duplicates=duplicates, job_status=job.status)


@router.post("/release")
def release(body: ReleaseRequest, job: WritableJob, session: WriteSessionDep) -> ReleaseResponse:
    """Hand back leased items unmeasured: claimable again at once, no attempt counted."""
    count = crud.release_items(session=session, job=job, lease_id=body.lease_id, item_ids=body.item_ids)
    return ReleaseResponse(released=count)


@router.post("/failures")
def report_failure(body: FailureRequest, job: WritableJob, session: WriteSessionDep) -> FailureResponse:
    """An item that could not be measured: retried up to the job's ``max_attempts``, then failed."""
    item = crud.report_failure(session=session, job=job, lease_id=body.lease_id, item_id=body.item_id, error=body.error)
    return FailureResponse(item_id=item.id, status=item.status, attempts=item.attempts)
