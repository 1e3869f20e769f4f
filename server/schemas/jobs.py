"""Profiling jobs, their validation plans and their progress."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from lut_store.crud import MAX_VALIDATION_NETWORKS, MAX_VALIDATION_SEED
from searchspace import DEFAULT_NETWORKS

from .common import JsonDict, Strict

__all__ = [
    "MAX_NETWORKS",
    "ArchText",
    "FailedItem",
    "JobCreate",
    "JobPublic",
    "Progress",
    "Seed",
    "ValidationPlanIn",
]

#: The most validation networks one request may name or draw (the store's limit).
MAX_NETWORKS = MAX_VALIDATION_NETWORKS
Seed = Annotated[int, Field(ge=0, le=MAX_VALIDATION_SEED, description="seed of the draw and of the fit/held-out split")]
ArchText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4000, pattern=r"^[^\x00]+$"),
    Field(description="one candidate per searchable layer, joined by commas (what `hwlut space` prints)"),
]


class ValidationPlanIn(Strict):
    """Validation networks: the named ``archs`` and ``n`` architectures drawn from the space with ``seed``."""

    n: Annotated[int, Field(ge=0, le=MAX_NETWORKS)] = DEFAULT_NETWORKS
    seed: Seed = 0
    archs: Annotated[list[ArchText], Field(max_length=MAX_NETWORKS)] = Field(default_factory=list)


class JobCreate(Strict):
    """A profiling job: its work items are the distinct entries of the space."""

    space: str | JsonDict = Field("fbnet", description="a built-in space name, or a spec (see searchspace.spec)")
    resolution: Annotated[int, Field(ge=8, le=4096)] | None = None
    runtime: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "onnxruntime"
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    options: JsonDict = Field(default_factory=dict)
    lease_seconds: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] = 300.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    entries: (
        Annotated[list[Annotated[str, StringConstraints(max_length=255)]], Field(min_length=1, max_length=10_000)]
        | None
    ) = Field(None, description="only these entries of the space (keys in any rendering); default: all")
    validation: ValidationPlanIn | None = Field(
        None,
        description="validation networks measured by the job's agents beside the entries (a restricted job "
        "measures their entries too); the server computes the LUT's accuracy when all are done",
    )


class Progress(BaseModel):
    """Work items by status."""

    pending: int
    leased: int
    done: int
    failed: int
    total: int


class JobPublic(BaseModel):
    """A job (or an imported LUT) with its progress."""

    id: int
    device: str
    kind: str
    status: str
    space_name: str | None
    space_hash: str | None
    resolution: int | None
    runtime: str
    threads: int | None
    options: dict[str, Any]
    lease_seconds: float
    max_attempts: int
    source_format: str | None
    created_at: datetime
    completed_at: datetime | None
    progress: Progress = Field(description="the entries: the job's status and its LUT depend on them only")
    validation: Progress = Field(description="the validation networks (none: all zero)")


class FailedItem(BaseModel):
    """An item that failed for good, with its last error."""

    item_id: int
    key: str
    attempts: int
    error: str | None
