"""A LUT's accuracy against whole networks: upload a validation, add validation networks to a job, read it.

``{lut}`` in a path is a job id or ``latest`` (the device's newest complete LUT).
"""

from __future__ import annotations

from fastapi import APIRouter

from lut_store import crud
from searchspace.intervals import verdict

from ..deps import ReaderDep, SessionDep, WritableDevice, WriteSessionDep, mark_luts_changed
from ..errors import ApiError, body_loc, error_responses
from ..schemas import AccuracyPublic, AccuracyUpload, Progress, ValidationPublic, ValidationRequest

router = APIRouter(prefix="/v1/devices/{name}/luts/{lut}", tags=["luts"], responses=error_responses(401, 403, 404, 422))


@router.put("/accuracy", responses=error_responses(409))
def put_accuracy(
    name: str, lut: str, body: AccuracyUpload, device: WritableDevice, session: WriteSessionDep
) -> AccuracyPublic:
    """Store the LUT's validation (``hwlut validate --server``), replacing any earlier one.

    The body is :meth:`profiler.validate.ValidationResult.to_dict`; a device
    token of the device or the admin token may write it.
    """
    job = crud.resolve_lut(session=session, device=device.name, ref=lut)
    meta = body.report.meta
    if job.space is not None:
        spec = job.space.spec
        for field, have in (("space", job.space.name), ("resolution", job.resolution or spec.get("resolution"))):
            if meta.get(field) is not None and have is not None and meta.get(field) != have:
                raise ApiError(
                    409,
                    ["body", "report", "meta", field],
                    f"the report is of {field} {meta.get(field)!r}, LUT {job.id} of {name!r} of {have!r}",
                    "conflict",
                )
    stored = crud.set_accuracy(session=session, job=job, document=body.model_dump(mode="json", exclude_unset=True))
    mark_luts_changed(session)
    return _public(stored)


@router.post("/validation", responses=error_responses(409))
def add_validation(
    name: str, lut: str, body: ValidationRequest, device: WritableDevice, session: WriteSessionDep
) -> ValidationPublic:
    """Add validation networks to a profiling job (``hwlut validate --device``), finished or not.

    The named ``archs`` and ``n`` architectures drawn with ``seed`` become
    work items of the job (those it has already are not added again); the
    device's agents measure them end to end, and when the job's entries are
    complete and its networks measured the server computes the LUT's
    accuracy (``GET …/accuracy``, ``source: job``). The job's status, its
    completion time and ``latest`` do not change. A device token of the
    device or the admin token may ask; an imported LUT (409: no agent
    measures it) cannot be validated this way.
    """
    job = crud.resolve_lut(session=session, device=device.name, ref=lut)
    try:
        archs, added = crud.add_validation(
            session=session, job=job, n=body.n, seed=body.seed, archs=body.archs, draw=body.draw
        )
    except crud.StoreError as exc:
        if exc.field == "lut":
            raise
        kind = "conflict" if exc.status == 409 else "invalid"
        raise ApiError(exc.status, body_loc(exc.field), exc.message, kind) from None
    return ValidationPublic(
        lut=job.id,
        job_status=job.status,
        archs=archs,
        added=added,
        validation=Progress(**crud.validation_progress(session=session, job=job)),
    )


@router.get("/accuracy", dependencies=[ReaderDep])
def get_accuracy(name: str, lut: str, session: SessionDep) -> AccuracyPublic:
    """The LUT's stored validation: per network measured, raw, calibrated and errors; figures; calibration."""
    job = crud.resolve_lut(session=session, device=name, ref=lut)
    return _public(crud.get_accuracy(session=session, job=job))


def _public(stored: dict) -> AccuracyPublic:
    """The stored document with the LUT's verdict from its figures, intervals and the networks' noise."""
    report = stored.get("report") or {}
    noise = (report.get("meta") or {}).get("noise")
    return AccuracyPublic(**stored, verdict=verdict(report, noise if isinstance(noise, dict) else None))
