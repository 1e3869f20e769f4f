"""Few-shot jobs: the agents measure K entries chosen by the server, which predicts the rest of the LUT."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field, StringConstraints

from lut_store import crud
from lut_store.crud.fewshot import create_fewshot_job

from ..convert import job_public
from ..deps import WritableDevice, WriteSessionDep
from ..errors import ApiError, body_loc, error_responses
from ..schemas import JobCreate, JobPublic
from ..spaces import resolve_space

router = APIRouter(tags=["jobs"], responses=error_responses(401, 403, 404, 422))


class FewShotJobCreate(JobCreate):
    """A profiling job of which the agents measure only ``few_shot`` entries; the server predicts the rest."""

    few_shot: Annotated[int, Field(ge=1, le=10_000)] = Field(description="K: how many entries the agents measure")
    few_shot_basis: (
        Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=255)]], Field(max_length=100)] | None
    ) = Field(None, description="devices whose complete LUTs of the space the prediction combines; default: all")


@router.post("/v1/devices/{name}/jobs/few-shot", status_code=201)
def create_job(body: FewShotJobCreate, device: WritableDevice, session: WriteSessionDep) -> JobPublic:
    """A few-shot job: the server chooses the K entries that tell most about the device (active selection).

    The agents measure them as in any job. When they are done the server
    stores the predicted LUT as the device's newest complete LUT: every
    entry's ``source`` says ``measured`` or ``predicted`` (with ``std``, µs),
    and its provenance holds the prediction's leave-one-out figures on the
    measured entries. ``entries`` and ``validation`` are not taken here (422).
    """
    for field in ("entries", "validation"):
        if getattr(body, field) is not None:
            raise ApiError(422, ["body", field], "not with few_shot: the server chooses the entries")
    try:
        settings = body.settings()
        job = create_fewshot_job(
            session=session,
            device=device,
            spec=resolve_space(body.space, body.resolution),
            settings=settings,
            k=body.few_shot,
            basis=body.few_shot_basis,
            lease_seconds=body.lease_seconds,
            max_attempts=body.max_attempts,
        )
    except crud.Invalid as exc:
        raise ApiError(422, body_loc(exc.field), exc.message) from None
    return job_public(session=session, job=job)
