"""Devices and their tokens (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from lut_store import crud

from ..deps import AdminDep, ReaderDep, SessionDep, WriteSessionDep, mark_luts_changed
from ..errors import error_responses
from ..schemas import DeviceCreate, DevicePublic, DeviceWithToken, TokenPublic

router = APIRouter(prefix="/v1/devices", tags=["devices"], responses=error_responses(401, 403, 422))


@router.post("", status_code=201, dependencies=[AdminDep], responses=error_responses(409))
def create_device(body: DeviceCreate, session: WriteSessionDep) -> DeviceWithToken:
    """Register a device; the answer holds its token, shown this once."""
    device, token = crud.create_device(
        session=session, name=body.name, description=body.description, hardware=body.hardware, runtime=body.runtime
    )
    return DeviceWithToken(device=DevicePublic.model_validate(device), token=token)


@router.get("", dependencies=[ReaderDep])
def list_devices(session: SessionDep) -> list[DevicePublic]:
    """Every device."""
    return [DevicePublic.model_validate(d) for d in crud.list_devices(session=session)]


@router.get("/{name}", dependencies=[ReaderDep], responses=error_responses(404))
def show_device(name: str, session: SessionDep) -> DevicePublic:
    """One device."""
    return DevicePublic.model_validate(crud.get_device(session=session, name=name))


@router.delete("/{name}", status_code=204, dependencies=[AdminDep], responses=error_responses(404))
def delete_device(name: str, session: WriteSessionDep) -> None:
    """Delete a device with its tokens, jobs and LUTs."""
    crud.delete_device(session=session, name=name)
    mark_luts_changed(session)


@router.post("/{name}/tokens", status_code=201, dependencies=[AdminDep], responses=error_responses(404))
def new_token(name: str, session: WriteSessionDep) -> TokenPublic:
    """Another token for a device (shown this once)."""
    device = crud.get_device(session=session, name=name)
    return TokenPublic(device=device.name, token=crud.issue_token(session=session, device=device))
