"""Statistics of latency samples: pure functions of numbers, no runtime, no clock.

Like pyperf's ``Benchmark`` beside its worker, this module only analyses what
the protocol (:mod:`profiler.protocol`) collected. Quantiles come from numpy;
the confidence interval of the median is the distribution-free order-statistic
interval: with ``B ~ Binomial(n, 1/2)`` counting the samples below the true
median, ``[x_(j), x_(n+1-j)]`` (1-based order statistics) covers it with
probability ``P(j <= B <= n-j) >= 1 - alpha`` where ``j = binom.ppf(alpha/2, n, 1/2)``.
It assumes independent samples from one distribution and nothing about its shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats as _sps

from searchspace.fields import STAT_FIELDS

__all__ = [
    "SUMMARY_FIELDS",
    "Summary",
    "median_ci",
    "median_ci_ranks",
    "relative_drift",
    "summarize",
]

#: The statistics a :class:`Summary` gives, in the registry's order (:data:`searchspace.fields.STAT_FIELDS`,
#: which names their units and checks); ``stop_reason`` is the protocol's to say, not the samples'.
SUMMARY_FIELDS: tuple[str, ...] = tuple(name for name in STAT_FIELDS if name != "stop_reason")


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based ranks ``(lo, hi)`` of the sorted samples bounding the median's CI.

    None when ``n`` is too small for any order-statistic interval to reach
    ``confidence`` (n < 6 at 95%).
    """
    if n < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"median_ci_ranks: need n >= 1 and 0 < confidence < 1, got n={n}, {confidence}")
    alpha = 1.0 - confidence
    j = int(_sps.binom.ppf(alpha / 2.0, n, 0.5))  # 1-based rank of the lower bound
    if j < 1:
        return None
    return j - 1, n - j


def median_ci(samples: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The distribution-free confidence interval of the median; ``(-inf, inf)`` when n is too small."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    if x.size == 0:
        raise ValueError("median_ci: no samples")
    ranks = median_ci_ranks(int(x.size), confidence)
    if ranks is None:
        return -math.inf, math.inf
    return float(x[ranks[0]]), float(x[ranks[1]])


@dataclass(frozen=True)
class Summary:
    """The statistics of one entry's samples (µs); immutable, validated."""

    median: float
    mean: float
    std: float
    min: float
    max: float
    p10: float
    p90: float
    count: int
    ci_low: float
    ci_high: float
    confidence: float

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("Summary: count must be >= 1")
        if not (self.min > 0 and math.isfinite(self.max)):
            raise ValueError(f"Summary: latencies must be finite and > 0 µs, got min={self.min}, max={self.max}")

    @property
    def ci_half_width(self) -> float:
        """Half the width of the median's CI, in µs (inf when the sample is too small)."""
        return (self.ci_high - self.ci_low) / 2.0

    @property
    def ci_rel(self) -> float:
        """The largest distance from the median to a CI bound, relative to the median.

        The stopping rule compares this with its target (0.01 = ±1%).
        """
        return max(self.median - self.ci_low, self.ci_high - self.median) / self.median

    def to_dict(self) -> dict[str, Any]:
        """The fields of :data:`SUMMARY_FIELDS` as JSON-safe numbers (an infinite bound becomes None)."""
        out = {name: getattr(self, name) for name in SUMMARY_FIELDS}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def summarize(samples: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Summary:
    """Median, mean, std (ddof=1), min, max, p10, p90, count and the median's CI of ``samples`` (µs)."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    if x.size == 0:
        raise ValueError("summarize: no samples")
    if not np.all(np.isfinite(x)) or x[0] <= 0:
        raise ValueError("summarize: samples must be finite and > 0 µs")
    p10, median, p90 = np.quantile(x, [0.1, 0.5, 0.9])
    ranks = median_ci_ranks(int(x.size), confidence)
    lo, hi = (-math.inf, math.inf) if ranks is None else (float(x[ranks[0]]), float(x[ranks[1]]))
    return Summary(
        median=float(median),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        min=float(x[0]),
        max=float(x[-1]),
        p10=float(p10),
        p90=float(p90),
        count=int(x.size),
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
    )


def relative_drift(value: float, reference: float) -> float:
    """``value / reference - 1``: how far a sentinel moved from its reference (0.05 = 5% slower)."""
    if reference <= 0:
        raise ValueError("relative_drift: reference must be > 0")
    return value / reference - 1.0
