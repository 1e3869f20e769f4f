"""Devices and their bearer tokens (only a token's SHA-256 digest is stored)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound
from ..models import Device, DeviceToken
from .changes import mark_luts_changed

__all__ = [
    "TOKEN_PREFIX",
    "create_device",
    "delete_device",
    "device_by_token",
    "get_device",
    "hash_token",
    "issue_token",
    "list_devices",
]

TOKEN_PREFIX = "hwlut_"


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_device(
    *,
    session: Session,
    name: str,
    description: str = "",
    hardware: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> tuple[Device, str]:
    """Register a device; returns it and its first token (the only time the token is seen)."""
    if session.scalar(select(Device.id).where(Device.name == name)) is not None:
        raise Conflict("name", f"a device named {name!r} exists")
    device = Device(name=name, description=description, hardware=dict(hardware or {}), runtime=dict(runtime or {}))
    session.add(device)
    session.flush()
    return device, issue_token(session=session, device=device)


def issue_token(*, session: Session, device: Device) -> str:
    """A new bearer token for ``device``; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(DeviceToken(device_id=device.id, token_hash=hash_token(token), hint=token[:10]))
    session.flush()
    return token


def device_by_token(*, session: Session, token: str) -> Device | None:
    """The device a token belongs to, or ``None``."""
    digest = hash_token(token)
    row = session.execute(
        select(DeviceToken.token_hash, Device).join(Device).where(DeviceToken.token_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    return row[1]


def get_device(*, session: Session, name: str) -> Device:
    """The device named ``name``, or :class:`NotFound`."""
    device = session.scalar(select(Device).where(Device.name == name))
    if device is None:
        raise NotFound("device", f"no device named {name!r}")
    return device


def list_devices(*, session: Session) -> list[Device]:
    """Every device, by name."""
    return list(session.scalars(select(Device).order_by(Device.name)))


def delete_device(*, session: Session, name: str) -> None:
    """Delete a device with its tokens, jobs and LUTs."""
    device = get_device(session=session, name=name)
    session.execute(delete(Device).where(Device.id == device.id))
    session.expunge(device)
    mark_luts_changed(session)
