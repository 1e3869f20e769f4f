"""The per-entry statistics of a LUT: one registry of field names, units and checks.

Every part that writes, stores, validates or serves an entry's statistics
reads this registry (as pyperf keeps its metadata fields in one place): the
profiler's summaries, the LUT file formats, the store's upload check and the
server's schema. A field's check returns the value as stored or raises
:class:`FieldError` naming the field.

Latencies are microseconds. ``ci_low``/``ci_high`` may be None where the
sample count is too small for an interval at the stated confidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LATENCY_FIELDS",
    "MAX_LATENCY_US",
    "STAT_FIELDS",
    "FieldError",
    "StatField",
    "check_latency",
    "check_probability",
    "check_stats",
    "is_finite_number",
    "is_whole",
]

#: The largest latency accepted anywhere (µs): 100 s.
MAX_LATENCY_US = 1e8


class FieldError(ValueError):
    """A value that a field does not accept; ``where`` names the field."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


def is_whole(value: Any) -> bool:
    """An ``int`` that is no ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A finite ``int`` or ``float`` that is no ``bool``."""
    return (is_whole(value) or isinstance(value, float)) and math.isfinite(value)


def check_latency(value: Any, where: str) -> float:
    """A finite, non-negative, plausible latency in µs, or :class:`FieldError` naming ``where``."""
    if not (is_whole(value) or isinstance(value, float)):
        raise FieldError(where, f"expected a number of µs, got {value!r}")
    if not math.isfinite(value) or value < 0 or value > MAX_LATENCY_US:
        raise FieldError(where, f"expected a finite latency in 0..{MAX_LATENCY_US:g} µs, got {value!r}")
    return float(value)


def _count(value: Any, where: str) -> int:
    if not is_whole(value) or value < 1 or value > 2**31 - 1:
        raise FieldError(where, f"expected a whole number of samples >= 1, got {value!r}")
    return value


def _ratio(value: Any, where: str) -> float:
    if not is_finite_number(value) or value < 0:
        raise FieldError(where, f"expected a finite ratio >= 0, got {value!r}")
    return float(value)


def check_probability(value: Any, where: str) -> float:
    """A probability strictly between 0 and 1 (a confidence level), or :class:`FieldError` naming ``where``."""
    if not is_finite_number(value) or not 0 < value < 1:
        raise FieldError(where, f"expected a probability between 0 and 1, got {value!r}")
    return float(value)


def _reason(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64 or not value.isprintable():
        raise FieldError(where, f"expected a short printable text (at most 64 characters), got {value!r}")
    return value


@dataclass(frozen=True)
class StatField:
    """One statistic of an entry: its name, unit, whether it may be None, and its check."""

    name: str
    unit: str
    description: str
    check: Callable[[Any, str], Any]
    nullable: bool = False
    required: bool = False

    def validate(self, value: Any, where: str) -> Any:
        """``value`` as stored, or :class:`FieldError` naming ``where``."""
        if value is None:
            if self.nullable and not self.required:
                return None
            raise FieldError(where, "required" if self.required else "may not be null")
        return self.check(value, where)


_FIELDS = (
    StatField("median", "us", "median of the samples (the LUT's latency)", check_latency, required=True),
    StatField("mean", "us", "mean of the samples", check_latency),
    StatField("std", "us", "standard deviation (ddof=1)", check_latency),
    StatField("min", "us", "fastest sample", check_latency),
    StatField("max", "us", "slowest sample", check_latency),
    StatField("p10", "us", "10th percentile", check_latency),
    StatField("p90", "us", "90th percentile", check_latency),
    StatField("count", "samples", "number of timed runs", _count),
    StatField("ci_low", "us", "lower bound of the median's confidence interval", check_latency, nullable=True),
    StatField("ci_high", "us", "upper bound of the median's confidence interval", check_latency, nullable=True),
    StatField("ci_half_width", "us", "half the interval's width", check_latency, nullable=True),
    StatField("ci_rel", "ratio", "half-width over the median", _ratio, nullable=True),
    StatField("confidence", "probability", "the interval's confidence level", check_probability),
    StatField("stop_reason", "text", "why measuring stopped: ci, cap, ...", _reason),
)

#: name -> field, in the order a LUT file writes them.
STAT_FIELDS: Mapping[str, StatField] = {f.name: f for f in _FIELDS}
#: The fields in µs (the columns ``*_us`` of a CSV LUT).
LATENCY_FIELDS: tuple[str, ...] = tuple(f.name for f in _FIELDS if f.unit == "us")


def check_stats(stats: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``stats`` checked field by field (``median`` required); unknown names pass through unchanged.

    Raises :class:`FieldError` naming ``where.NAME`` for the first bad field.
    """
    if "median" not in stats:
        raise FieldError(f"{where}.median", "required (µs)")
    out = dict(stats)
    for name, value in stats.items():
        known = STAT_FIELDS.get(name)
        if known is not None:
            out[name] = known.validate(value, f"{where}.{name}")
    for low, high in _ORDERED:
        a, b = out.get(low), out.get(high)
        if a is not None and b is not None and a > b * (1 + 1e-9):
            raise FieldError(f"{where}.{high}", f"{high} ({b!r}) is below {low} ({a!r}): not statistics of one sample")
    return out


#: Statistics of one sample are ordered: each pair is (lower, higher).
_ORDERED = (
    ("min", "median"),
    ("median", "max"),
    ("min", "mean"),
    ("mean", "max"),
    ("p10", "p90"),
    ("ci_low", "ci_high"),
)
