"""The API's request and response models (apart from the ORM tables in :mod:`lut_store.models`).

Every latency is in microseconds; fields say so with an ``_us`` suffix or a
``unit`` field.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from lut_store.formats import FORMATS, MAX_LATENCY_US

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Latency = Annotated[float, Field(ge=0, le=MAX_LATENCY_US, allow_inf_nan=False, description="µs")]
SmallText = Annotated[str, StringConstraints(max_length=4000)]
MAX_ID = 2**31 - 1  # row ids are 32-bit integers on PostgreSQL
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _finite(value: Any, path: str = "") -> Any:
    """Refuse NaN and infinities anywhere in a free-form JSON value (no database stores them as JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'}: NaN and infinity are not allowed")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{path}[{i}]")
    return value


JsonDict = Annotated[dict[str, Any], AfterValidator(_finite)]


class Strict(BaseModel):
    """Requests reject unknown fields, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """One thing wrong with a request: where (``loc``) and what (``msg``)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx answer of the API."""

    detail: list[Problem]


# -- devices ------------------------------------------------------------------------
class DeviceCreate(Strict):
    """Register a device."""

    name: Name
    description: SmallText = ""
    hardware: JsonDict = Field(default_factory=dict, description="CPU model, cores, SoC, ...")
    runtime: JsonDict = Field(default_factory=dict, description="runtime, version, threads, delegate, ...")


class DevicePublic(BaseModel):
    """A device as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    hardware: dict[str, Any]
    runtime: dict[str, Any]
    created_at: datetime


class DeviceWithToken(BaseModel):
    """A new device and its token: the only time the token is shown."""

    device: DevicePublic
    token: str


class TokenPublic(BaseModel):
    """A new device token: the only time it is shown."""

    device: str
    token: str


# -- jobs ------------------------------------------------------------------------------
MAX_NETWORKS = 1000
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="seed of the draw and of the fit/held-out split")]
ArchText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4000, pattern=r"^[^\x00]+$"),
    Field(description="one candidate per searchable layer, joined by commas (what `hwlut space` prints)"),
]


class ValidationPlanIn(Strict):
    """Validation networks: the named ``archs`` and ``n`` architectures drawn from the space with ``seed``."""

    n: Annotated[int, Field(ge=0, le=MAX_NETWORKS)] = 30
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


# -- agent protocol ----------------------------------------------------------------------
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


class EntryStats(BaseModel):
    """Statistics of one entry's samples, µs (``count`` samples)."""

    model_config = ConfigDict(extra="allow")

    median: Latency
    mean: Latency | None = None
    std: Latency | None = None
    min: Latency | None = None
    p10: Latency | None = None
    p90: Latency | None = None
    ci_low: Latency | None = None
    ci_high: Latency | None = None
    count: Annotated[int, Field(ge=1)] | None = None
    stop_reason: Annotated[str, StringConstraints(max_length=64)] | None = None

    @model_validator(mode="after")
    def _extras_finite(self) -> EntryStats:
        _finite(self.model_extra or {})
        return self


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


# -- LUTs and queries ----------------------------------------------------------------------
class LutImport(Strict):
    """A LUT file's text to store as the device's LUT."""

    content: Annotated[str, StringConstraints(min_length=1)]
    format: Literal["hwlut", "csv", "hwnasbench", "proxyless", "ofa"] | None = Field(
        None, description=f"one of {', '.join(FORMATS)}; guessed when absent"
    )
    space: str | dict[str, Any] | None = Field(None, description="space of a foreign table (name or spec)")
    resolution: Annotated[int, Field(ge=8, le=4096)] | None = None


class EntryPublic(BaseModel):
    """One LUT entry; ``entry_key`` is null for an op that is no hwlut entry."""

    key: str
    entry_key: str | None
    fields: dict[str, Any] | None
    latency_us: float
    stats: dict[str, Any]
    unit: Literal["us"] = "us"


class BatchRequest(Strict):
    """Keys in any rendering."""

    keys: Annotated[list[Annotated[str, StringConstraints(max_length=255)]], Field(min_length=1, max_length=10_000)]


class BatchResponse(BaseModel):
    """The entries found (by the key asked for) and the keys the LUT lacks."""

    lut: int
    unit: Literal["us"] = "us"
    entries: dict[str, EntryPublic]
    missing: list[str]


class ArchitectureRequest(Strict):
    """One architecture of the LUT's space: candidate names joined by commas, or a list."""

    arch: str | list[str]


class LayerLatency(BaseModel):
    """One layer of an architecture and its LUT latency (null when missing)."""

    layer: str
    key: str
    latency_us: float | None


class ArchitectureLatency(BaseModel):
    """An architecture's LUT sum, per layer; ``complete`` is false when entries are missing.

    ``calibrated_us`` is ``slope * total_us + intercept_us`` of the LUT's
    calibration (null without one, or when entries are missing); ``accuracy``
    the LUT's accuracy figures against whole networks (null when never validated).
    """

    lut: int
    unit: Literal["us"] = "us"
    total_us: float
    calibrated_us: float | None = None
    overhead_us: float | None
    complete: bool
    missing: list[str]
    layers: list[LayerLatency]
    calibration: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None


# -- accuracy (a LUT against whole networks measured end to end) ----------------------------------
Finite = Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Pct = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
Corr = Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=100_000)]
Arch = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"^[^\x00]+$")]
Index_ = Annotated[int, Field(ge=0, le=100_000)]


class FiguresIn(Strict):
    """Accuracy figures of one kind of prediction over ``n`` networks (shares in [0, 1], errors in %)."""

    n: Annotated[int, Field(ge=1, le=100_000)]
    within_5: Share
    within_10: Share
    mape: Pct
    rmspe: Pct
    mean_error_pct: Finite
    max_abs_error_pct: Pct
    spearman: Corr | None = None
    kendall: Corr | None = None


class CalibrationIn(Strict):
    """A fitted correction ``slope * raw + intercept_us`` and the networks it was fitted on."""

    kind: Literal["linear", "scale", "offset"] = "linear"
    slope: Finite
    intercept_us: Finite = 0.0
    unit: Literal["us"] = "us"
    fitted_on: Annotated[list[Arch], Field(max_length=100_000)] = Field(default_factory=list)
    fit_seed: int | None = None
    held_out: Annotated[list[Arch], Field(max_length=100_000)] | None = None
    fitted_at: SmallText | None = None


class NetworkRowIn(Strict):
    """One validation network: measured latency, raw LUT sum and the predictions derived from it (µs, %)."""

    arch: Arch
    measured_us: Annotated[float, Field(gt=0, le=MAX_LATENCY_US, allow_inf_nan=False)]
    raw_us: Latency
    raw_error_pct: Finite | None = None
    entries: Annotated[int, Field(ge=1, le=100_000)]
    overhead_us: Finite | None = None
    overhead_error_pct: Finite | None = None
    role: Literal["fit", "held_out"] | None = None
    calibrated_us: Finite | None = None
    calibrated_error_pct: Finite | None = None


class SplitIn(Strict):
    """Which rows the calibration was fitted on and which it is reported on (indices into ``rows``)."""

    seed: int | None = None
    fit: Annotated[list[Index_], Field(max_length=100_000)] = Field(default_factory=list)
    held_out: Annotated[list[Index_], Field(max_length=100_000)] = Field(default_factory=list)


class AccuracyReportIn(Strict):
    """An :class:`profiler.accuracy.AccuracyReport` as ``to_dict`` writes it."""

    unit: Literal["us"] = "us"
    networks: Annotated[int, Field(ge=1, le=100_000)]
    raw: FiguresIn
    raw_held_out: FiguresIn | None = None
    overhead: FiguresIn | None = None
    calibrated: FiguresIn | None = None
    calibration: CalibrationIn | None = None
    held_out: Count = 0
    overhead_per_invocation_us: Finite | None = None
    split: SplitIn = Field(default_factory=SplitIn)
    rows: Annotated[list[NetworkRowIn], Field(min_length=1, max_length=100_000)]
    meta: JsonDict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> AccuracyReportIn:
        if self.networks != len(self.rows):
            raise ValueError(f"networks is {self.networks} but there are {len(self.rows)} rows")
        if len({r.arch for r in self.rows}) != len(self.rows):
            raise ValueError("rows: a network is listed twice")
        fit, held = set(self.split.fit), set(self.split.held_out)
        if fit & held:
            raise ValueError(f"split: rows {sorted(fit & held)[:5]} are both fitted on and held out")
        if any(i >= len(self.rows) for i in fit | held):
            raise ValueError("split: an index is out of range of rows")
        if self.calibration is not None:
            if self.calibrated is None:
                raise ValueError("calibration without calibrated figures")
            archs_held = {self.rows[i].arch for i in held}
            if archs_held & set(self.calibration.fitted_on):
                raise ValueError("calibration: fitted on a held-out network (figures must be held out)")
            if self.calibrated.n != len(held):
                raise ValueError("calibrated figures must cover exactly the held-out networks")
        return self


class NetworkIn(Strict):
    """One validation network's measurement (its statistics as the protocol recorded them)."""

    arch: Arch
    artifact: SmallText | None = None
    stats: JsonDict = Field(default_factory=dict)
    sentinel: JsonDict | None = None


class PlanIn(Strict):
    """How the validation networks were chosen."""

    seed: int | None = None
    n: Count | None = None
    named: Annotated[list[Arch], Field(max_length=100_000)] = Field(default_factory=list)


class AccuracyUpload(Strict):
    """A LUT's validation as :meth:`profiler.validate.ValidationResult.to_dict` writes it."""

    plan: PlanIn = Field(default_factory=PlanIn)
    lut_cache_mode: Annotated[str, StringConstraints(max_length=64)] | None = None
    runtime: JsonDict = Field(default_factory=dict)
    finished_at: SmallText | None = None
    report: AccuracyReportIn
    networks: Annotated[list[NetworkIn], Field(max_length=100_000)] = Field(default_factory=list)


class ValidationRequest(ValidationPlanIn):
    """Validation networks to add to a profiling job: the named ``archs``, then ``n`` drawn with ``seed``."""


class ValidationPublic(BaseModel):
    """What adding validation networks did: the plan's networks, how many were new, the progress."""

    lut: int
    job_status: str
    archs: list[str] = Field(description="the plan's networks, named first (those the job had are not added again)")
    added: int
    validation: Progress


class AccuracyPublic(BaseModel):
    """A LUT's stored validation: the uploaded document, with the LUT's id and when it was stored.

    ``source`` is ``upload`` (measured elsewhere, ``PUT …/accuracy``) or
    ``job`` (computed by the server from the networks the job's agents measured).
    """

    lut: int
    uploaded_at: str
    source: Literal["upload", "job"] = "upload"
    plan: dict[str, Any] = Field(default_factory=dict)
    lut_cache_mode: str | None = None
    runtime: dict[str, Any] = Field(default_factory=dict)
    finished_at: str | None = None
    report: dict[str, Any]
    networks: list[dict[str, Any]] = Field(default_factory=list)


class RatioRow(BaseModel):
    """One entry on both devices: ``ratio = b_us / a_us``."""

    key: str
    a_us: float
    b_us: float
    ratio: float | None


class Comparison(BaseModel):
    """Two devices' LUTs entry by entry."""

    a: str
    b: str
    a_lut: int
    b_lut: int
    unit: Literal["us"] = "us"
    geomean_ratio: float | None
    entries: list[RatioRow]
    only_in_a: list[str]
    only_in_b: list[str]


class Health(BaseModel):
    """The server is up; its schema revision."""

    status: Literal["ok"] = "ok"
    schema_revision: str
