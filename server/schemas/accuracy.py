"""A LUT's accuracy against whole networks measured end to end: uploaded reports, added validation networks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from searchspace.fields import MAX_LATENCY_US

from .common import JsonDict, Latency, SmallText, Strict
from .jobs import Progress, ValidationPlanIn

__all__ = [
    "AccuracyPublic",
    "AccuracyReportIn",
    "AccuracyUpload",
    "CalibrationIn",
    "FiguresIn",
    "NetworkIn",
    "NetworkRowIn",
    "PlanIn",
    "SelectionIn",
    "SplitIn",
    "ValidationPublic",
    "ValidationRequest",
]

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

    kind: Literal["linear", "scale", "offset", "overhead"] = "linear"
    slope: Finite
    intercept_us: Finite = 0.0
    overhead_us: Finite | None = None
    chosen_by: SmallText | None = None
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
    role: Literal["fit", "held_out", "out_of_fold"] | None = None
    calibrated_us: Finite | None = None
    calibrated_error_pct: Finite | None = None


class SplitIn(Strict):
    """Which rows the calibration was fitted on and which it is reported on (indices into ``rows``)."""

    seed: int | None = None
    fit: Annotated[list[Index_], Field(max_length=100_000)] = Field(default_factory=list)
    held_out: Annotated[list[Index_], Field(max_length=100_000)] = Field(default_factory=list)


Model = Literal["none", "overhead", "scale", "offset", "linear"]


class SelectionIn(Strict):
    """How cross-validation chose the calibration: folds, the winner's out-of-fold predictions, per-model scores."""

    method: SmallText | None = None
    seed: int | None = None
    shrink: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] = 1.0
    chosen: Model
    reason: SmallText | None = None
    margin_mape: Finite | None = None
    tried: Annotated[list[Model], Field(max_length=10)] = Field(default_factory=list)
    scores: JsonDict = Field(default_factory=dict)
    folds: Annotated[list[Index_], Field(max_length=100_000)]
    oof_us: Annotated[list[Finite], Field(max_length=100_000)]


class AccuracyReportIn(Strict):
    """An :class:`searchspace.accuracy.AccuracyReport` as ``to_dict`` writes it."""

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
    chosen: Model | None = None
    choice: JsonDict | None = None
    selection: SelectionIn | None = None
    nested: FiguresIn | None = None
    intervals: JsonDict | None = None
    strata: Annotated[list[JsonDict], Field(max_length=1000)] | None = None
    quick: bool = False

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
        if self.selection is not None:  # cross-validated: every network predicted out of fold
            sel = self.selection
            if len(sel.folds) != len(self.rows) or len(sel.oof_us) != len(self.rows):
                raise ValueError("selection: folds and oof_us must have one value per row")
            if self.calibrated is None or self.calibrated.n != len(self.rows):
                raise ValueError("calibrated figures of a cross-validated report must cover every network")
            if (self.calibration is None) != (sel.chosen == "none"):
                raise ValueError(f"calibration: the served calibration is not the chosen model {sel.chosen!r}")
            return self
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
    draw: Literal["stratified", "uniform"] | None = None
    strata: Annotated[int, Field(ge=1, le=1000)] | None = None
    timing: Literal["within", "apart"] | None = Field(
        default=None, description="networks timed within the LUT's build (in its passes) or apart from it (after)"
    )


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
    verdict: dict[str, Any] | None = Field(
        default=None, description="trusted / rough / not validated, with the reasons (searchspace.intervals.verdict)"
    )
