"""What the store refuses: :class:`StoreError` and its kinds, each naming the field at fault.

Shared by the store's functions (:mod:`lut_store.crud`), the pure LUT queries
(:mod:`lut_store.snapshots`) and the server, which answers ``status`` with the
field as the error's location.
"""

from __future__ import annotations

__all__ = ["Conflict", "Invalid", "NotFound", "StoreError"]


class StoreError(Exception):
    """A request the store refuses; ``field`` names what is wrong."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(StoreError):
    """The thing named by ``field`` does not exist."""

    status = 404


class Conflict(StoreError):
    """The request contradicts the database's state (a name taken, an item not leased to you)."""

    status = 409


class Invalid(StoreError):
    """A value that cannot be stored (an impossible entry, a NaN latency)."""

    status = 422
