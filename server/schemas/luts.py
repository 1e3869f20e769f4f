"""LUTs and the queries on them: import, entries, batches, an architecture's sum, two LUTs compared."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from lut_store.formats import FORMATS

from .common import Strict

__all__ = [
    "ArchitectureLatency",
    "ArchitectureRequest",
    "BatchRequest",
    "BatchResponse",
    "Comparison",
    "EntryPublic",
    "LayerLatency",
    "LutImport",
    "RatioRow",
]


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
