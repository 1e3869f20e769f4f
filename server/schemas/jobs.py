"""Profiling jobs, their validation plans and their progress."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lut_store.crud import job_settings
from searchspace.jobs import (
    CACHE_MODES,
    MAX_RUNTIME_NAME,
    MAX_THREADS,
    OPTIMIZATION_LEVELS,
    PROTOCOL_FIELDS,
    RUNTIME_ALIASES,
    RUNTIMES,
    SETTING_OPTIONS,
    JobSettings,
)
from searchspace.validation import DEFAULT_NETWORKS, MAX_VALIDATION_NETWORKS, MAX_VALIDATION_SEED

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
    draw: Literal["stratified", "uniform"] = Field(
        default="stratified",
        description="stratified: spread over the LUT-sum range of a MAC-based proxy LUT (fastest to slowest); "
        "uniform: uniformly random architectures (a narrow band of latencies)",
    )


class JobCreate(Strict):
    """A profiling job: its work items are the distinct entries of the space.

    ``runtime``, ``threads`` and ``options`` are the job's settings
    (:class:`searchspace.jobs.JobSettings`, read by :meth:`settings`): a
    value the agents could not use is refused with 422 naming the field
    (``["body", "options", "cache_mode"]``).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"space": "fbnet", "resolution": 32, "runtime": "onnxruntime", "threads": 1},
                {
                    "space": "fbnet",
                    "resolution": 224,
                    "runtime": "tflite",
                    "threads": 4,
                    "options": {"cache_mode": "warm"},
                    "validation": {"n": 20, "seed": 0},
                },
            ]
        }
    )

    space: str | JsonDict = Field("fbnet", description="a built-in space name, or a spec (see searchspace.spec)")
    resolution: Annotated[int, Field(ge=8, le=4096)] | None = None
    runtime: Annotated[str, StringConstraints(min_length=1, max_length=MAX_RUNTIME_NAME)] = Field(
        "onnxruntime", description=f"{', '.join(RUNTIMES)} or an alias ({', '.join(RUNTIME_ALIASES)})"
    )
    threads: Annotated[int, Field(ge=1, le=MAX_THREADS)] | None = None
    options: JsonDict = Field(
        default_factory=dict,
        description=f"the job's settings, each optional: {', '.join(SETTING_OPTIONS)} (protocol: fields of the "
        f"measurement protocol, {', '.join(PROTOCOL_FIELDS)}; cache_mode: {', '.join(CACHE_MODES)}; optimization "
        f"(onnxruntime): {', '.join(OPTIMIZATION_LEVELS)}; xnnpack (LiteRT, adb): true or false)",
    )
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

    def settings(self) -> JobSettings:
        """The job's settings, checked: :class:`lut_store.errors.Invalid` names a bad one (``options.cache_mode``)."""
        return job_settings({"runtime": self.runtime, "threads": self.threads, "options": self.options})


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
