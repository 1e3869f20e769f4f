"""Dependencies: settings, the store, one session per request, and who is asking.

Tokens travel as ``Authorization: Bearer …``; they are compared in constant
time and never logged. Reads are open unless ``HWLUT_READ_TOKEN`` is set;
then the read token, the admin token or any device token may read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lut_store import Store
from lut_store.crud import LUTS_CHANGED, device_by_token, get_device, get_job, mark_luts_changed
from lut_store.models import Device, Job

from .auth import known_reader, same_token
from .cache import LutCache
from .errors import ApiError
from .schemas import MAX_ID
from .settings import Settings

__all__ = [
    "AdminDep",
    "JobIdPath",
    "LutCacheDep",
    "Principal",
    "ReaderDep",
    "SessionDep",
    "SettingsDep",
    "StoreDep",
    "WritableDevice",
    "WritableJob",
    "WriteSessionDep",
    "WriterDep",
    "mark_luts_changed",
]


async def app_settings(request: Request) -> Settings:
    """The app's settings (``create_app``'s); a coroutine, so no thread is spent on it."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]
JobIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="a job id")]
_bearer = HTTPBearer(auto_error=False, description="An admin, device or read token")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
#: The same header for reads, under its own scheme name, which the OpenAPI schema shows as optional
#: (server.openapi): reads are open unless the server has a read token.
READ_SCHEME = "OptionalBearer"
_read_bearer = HTTPBearer(auto_error=False, scheme_name=READ_SCHEME, description="Any token, when reads need one")
ReadBearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_read_bearer)]


def store_of(request: Request) -> Store:
    """The app's store."""
    return request.app.state.store


def cache_of(request: Request) -> LutCache:
    """The app's cache of LUTs."""
    return request.app.state.lut_cache


async def get_store(request: Request) -> Store:
    """The app's store (a dependency)."""
    return store_of(request)


async def get_lut_cache(request: Request) -> LutCache:
    """The app's cache of LUTs (a dependency)."""
    return cache_of(request)


StoreDep = Annotated[Store, Depends(get_store)]
LutCacheDep = Annotated[LutCache, Depends(get_lut_cache)]


def _luts_changed(session: Session) -> bool:
    # The store marks the writes that complete a job, import a LUT, store an accuracy report or delete
    # a device (lut_store.crud.mark_luts_changed); claims, heartbeats and uploads that leave every
    # LUT as it was (a complete job's validation networks) keep the cache.
    return bool(session.info.get(LUTS_CHANGED))


def get_session(request: Request) -> Iterator[Session]:
    """A read transaction for the request."""
    with store_of(request).transaction() as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    """The request's one write transaction: committed before the answer, rolled back on any error.

    A write that may change which LUT a reference names ends the LUT cache's
    generation once it is committed.
    """
    with store_of(request).transaction(write=True) as session:
        yield session
        changed = _luts_changed(session)
    if changed:
        cache_of(request).invalidate()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]


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


async def require_reader(request: Request, creds: ReadBearerDep) -> None:
    """Reads: open, or (with a read token configured) any valid token.

    Open reads cost nothing; a device token is looked up in the database once
    per cache generation (:meth:`LutCache.check_token`).
    """
    settings: Settings = request.app.state.settings
    if settings.read_token is None:
        return
    if creds is None:
        raise _unauthorized("reads need a token (Authorization: Bearer …)")
    token = creds.credentials
    cache = cache_of(request)
    if known_reader(settings, cache, token):
        return
    if await run_in_threadpool(cache.check_token, store=store_of(request), token=token):
        return
    raise _forbidden("the token is not valid here")


def require_admin(settings: SettingsDep, creds: BearerDep) -> None:
    """The admin token, or 401/403 (writes are refused when no admin token is configured)."""
    if settings.admin_token is None:
        raise _forbidden("no admin token is configured on the server (set HWLUT_ADMIN_TOKEN)")
    if creds is None:
        raise _unauthorized("this needs the admin token (Authorization: Bearer …)")
    if not same_token(creds.credentials, settings.admin_token):
        raise _forbidden("this needs the admin token")


def get_writer(settings: SettingsDep, creds: BearerDep, session: WriteSessionDep) -> Principal:
    """The admin or a device, from the bearer token."""
    if creds is None:
        raise _unauthorized("writes need a token (Authorization: Bearer …)")
    if same_token(creds.credentials, settings.admin_token):
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


def writable_job(job_id: JobIdPath, writer: WriterDep, session: WriteSessionDep) -> Job:
    """The job ``job_id`` of the path, if the writer may write its device."""
    job = get_job(session=session, job_id=job_id)
    if not writer.may_write(job.device):
        raise _forbidden(f"this token may not write job {job_id}")
    return job


WritableDevice = Annotated[Device, Depends(writable_device)]
WritableJob = Annotated[Job, Depends(writable_job)]
