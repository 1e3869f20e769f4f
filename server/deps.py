"""Dependencies: settings, the store, one session per request, and who is asking.

Tokens travel as ``Authorization: Bearer …``; they are compared in constant
time and never logged. Reads are open unless ``HWLUT_READ_TOKEN`` is set;
then the read token, the admin token or any device token may read.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from lut_store import Store
from lut_store.crud import device_by_token, get_device, get_job
from lut_store.models import Device, Job

from .cache import LutCache
from .errors import ApiError
from .settings import Settings, get_settings

__all__ = [
    "AdminDep",
    "LutCacheDep",
    "Principal",
    "ReaderDep",
    "SessionDep",
    "SettingsDep",
    "WritableDevice",
    "WritableJob",
    "WriteSessionDep",
    "WriterDep",
]

SettingsDep = Annotated[Settings, Depends(get_settings)]
_bearer = HTTPBearer(auto_error=False, description="An admin, device or read token")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_store(request: Request) -> Store:
    """The app's store."""
    return request.app.state.store


def get_lut_cache(request: Request) -> LutCache:
    """The app's cache of complete LUTs."""
    return request.app.state.lut_cache


LutCacheDep = Annotated[LutCache, Depends(get_lut_cache)]


def get_session(request: Request) -> Iterator[Session]:
    """A read transaction for the request."""
    with get_store(request).transaction() as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    """The request's one write transaction: committed before the answer, rolled back on any error."""
    with get_store(request).transaction(write=True) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]


def _same(a: str, b: str | None) -> bool:
    return b is not None and hmac.compare_digest(a.encode(), b.encode())


def _unauthorized(msg: str) -> ApiError:
    return ApiError(401, ["header", "authorization"], msg, "unauthorized", {"WWW-Authenticate": "Bearer"})


def _forbidden(msg: str) -> ApiError:
    return ApiError(403, ["header", "authorization"], msg, "forbidden")


@dataclass(frozen=True)
class Principal:
    """Who writes: the admin, or one device (``device_id``)."""

    admin: bool
    device_id: int | None = None

    def may_write(self, device: Device) -> bool:
        """Whether this principal may write ``device``'s jobs and items."""
        return self.admin or self.device_id == device.id


def require_reader(request: Request, settings: SettingsDep, creds: BearerDep) -> None:
    """Reads: open, or (with a read token configured) any valid token."""
    if settings.read_token is None:
        return
    if creds is None:
        raise _unauthorized("reads need a token (Authorization: Bearer …)")
    token = creds.credentials
    if _same(token, settings.read_token) or _same(token, settings.admin_token):
        return
    with get_store(request).transaction() as session:
        if device_by_token(session=session, token=token) is not None:
            return
    raise _forbidden("the token is not valid here")


def require_admin(settings: SettingsDep, creds: BearerDep) -> None:
    """The admin token, or 401/403 (writes are refused when no admin token is configured)."""
    if settings.admin_token is None:
        raise _forbidden("no admin token is configured on the server (set HWLUT_ADMIN_TOKEN)")
    if creds is None:
        raise _unauthorized("this needs the admin token (Authorization: Bearer …)")
    if not _same(creds.credentials, settings.admin_token):
        raise _forbidden("this needs the admin token")


def get_writer(settings: SettingsDep, creds: BearerDep, session: WriteSessionDep) -> Principal:
    """The admin or a device, from the bearer token."""
    if creds is None:
        raise _unauthorized("writes need a token (Authorization: Bearer …)")
    if _same(creds.credentials, settings.admin_token):
        return Principal(admin=True)
    device = device_by_token(session=session, token=creds.credentials)
    if device is None:
        raise _forbidden("the token is neither the admin token nor a device token")
    return Principal(admin=False, device_id=device.id)


ReaderDep = Depends(require_reader)
AdminDep = Depends(require_admin)
WriterDep = Annotated[Principal, Depends(get_writer)]


def writable_device(name: str, writer: WriterDep, session: WriteSessionDep) -> Device:
    """The device ``name`` of the path, if the writer may write it."""
    device = get_device(session=session, name=name)
    if not writer.may_write(device):
        raise _forbidden(f"this token may not write device {name!r}")
    return device


def writable_job(job_id: int, writer: WriterDep, session: WriteSessionDep) -> Job:
    """The job ``job_id`` of the path, if the writer may write its device."""
    job = get_job(session=session, job_id=job_id)
    if not writer.may_write(job.device):
        raise _forbidden(f"this token may not write job {job_id}")
    return job


WritableDevice = Annotated[Device, Depends(writable_device)]
WritableJob = Annotated[Job, Depends(writable_job)]
