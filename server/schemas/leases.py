"""The agent protocol: leases of work items, heartbeats, uploaded results, hand-backs, failures."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from searchspace.fields import STAT_FIELDS, FieldError, StatField

from .common import Id, JsonDict, Latency, SmallText, Strict, finite

__all__ = [
    "ClaimRequest",
    "EntryStats",
    "FailureRequest",
    "FailureResponse",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "LeasePublic",
    "ReleaseRequest",
    "ReleaseResponse",
    "ResultIn",
    "UploadRequest",
    "UploadResponse",
    "WhoAmI",
    "WorkItemPublic",
]


class ClaimRequest(Strict):
    """Lease up to ``max_items`` work items."""

    agent: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    max_items: Annotated[int, Field(ge=1, le=1000)] = 16
    lease_seconds: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] | None = None
    #: The agent's own id for this lease, written to its disk before it asks: a retried claim with
    #: the same id gets the same items back, and a restarted agent can hand them back by it.
    lease_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")] | None = None


class WorkItemPublic(BaseModel):
    """A leased work item: measure ``key`` (its ``fields`` build the block)."""

    item_id: int
    kind: str
    key: str
    fields: dict[str, Any]
    attempts: int


class LeasePublic(BaseModel):
    """A lease and its items (empty when nothing is left to claim)."""

    lease_id: str
    expires_at: datetime
    items: list[WorkItemPublic]


class HeartbeatRequest(Strict):
    """Extend a lease."""

    lease_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    lease_seconds: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] | None = None


class HeartbeatResponse(BaseModel):
    """How many items the lease holds, until when."""

    items: int
    expires_at: datetime


class _EntryStatsBase(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    @model_validator(mode="after")
    def _extras_finite(self) -> _EntryStatsBase:
        finite(self.model_extra or {})
        return self


#: The type a statistic of each unit has in the API (its bounds show in the OpenAPI schema).
_TYPES: dict[str, Any] = {
    "us": Latency,
    "samples": Annotated[int, Field(ge=1)],
    "ratio": float,
    "probability": float,
    "text": Annotated[str, StringConstraints(max_length=64)],
}


def _checked(stat: StatField) -> AfterValidator:
    """The registry's check of ``stat`` as a validator: a refusal is a 422 naming the field."""

    def check(value: Any) -> Any:
        try:
            return stat.check(value, stat.name)
        except FieldError as exc:
            raise ValueError(exc.message) from None

    return AfterValidator(check)


def _stat_field(stat: StatField) -> tuple[Any, Any]:
    kind = Annotated[
        _TYPES[stat.unit],
        _checked(stat),
        Field(description=f"{stat.description} ({'µs' if stat.unit == 'us' else stat.unit})"),
    ]
    return (kind, ...) if stat.required else (kind | None, None)


#: One entry's statistics: the fields of :data:`searchspace.fields.STAT_FIELDS` (only ``median`` required;
#: any may be null), each checked by the registry; other finite values travel along.
EntryStats = create_model(
    "EntryStats",
    __base__=_EntryStatsBase,
    __doc__="Statistics of one entry's samples, µs (``count`` samples).",
    __module__=__name__,
    **{stat.name: _stat_field(stat) for stat in STAT_FIELDS.values()},
)


class ResultIn(Strict):
    """One measured item, named by ``item_id`` (or by ``key``)."""

    item_id: Id | None = None
    key: Annotated[str, StringConstraints(max_length=255)] | None = None
    stats: EntryStats


class UploadRequest(Strict):
    """Results of leased items, with the measurement's provenance."""

    lease_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    results: Annotated[list[ResultIn], Field(max_length=10_000)]
    provenance: JsonDict = Field(default_factory=dict)
    overhead_us: Latency | None = None


class UploadResponse(BaseModel):
    """What an upload did: ``duplicates`` were already stored and left alone."""

    accepted: int
    duplicates: int
    job_status: str


class ReleaseRequest(Strict):
    """Hand back leased items unmeasured (all of the lease's, or ``item_ids``): claimable again at once."""

    lease_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    item_ids: Annotated[list[Id], Field(max_length=10_000)] | None = None


class ReleaseResponse(BaseModel):
    """How many items went back to ``pending``."""

    released: int


class WhoAmI(BaseModel):
    """Who a token is: the admin, or a device (``device`` names it)."""

    admin: bool
    device: str | None


class FailureRequest(Strict):
    """An item that could not be measured."""

    lease_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    item_id: Id
    error: SmallText


class FailureResponse(BaseModel):
    """The item's state after the failure: ``pending`` (retried) or ``failed`` (given up)."""

    item_id: int
    status: str
    attempts: int
