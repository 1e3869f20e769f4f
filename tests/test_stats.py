"""The pure statistics module: quantiles, the median's order-statistic CI, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from profiler.stats import SUMMARY_FIELDS, median_ci, median_ci_ranks, relative_drift, summarize
from searchspace.fields import STAT_FIELDS


@pytest.mark.parametrize("n", [6, 7, 10, 31, 100, 1000, 12345])
def test_median_ci_ranks_cover_95_percent_and_are_tightest(n: int) -> None:
    lo, hi = median_ci_ranks(n)
    # 0-based ranks lo..hi: the true median lies between them when lo+1 <= B <= hi, B ~ Bin(n, 1/2)
    coverage = sps.binom.cdf(hi, n, 0.5) - sps.binom.cdf(lo, n, 0.5)
    assert coverage >= 0.95
    tighter = sps.binom.cdf(hi - 1, n, 0.5) - sps.binom.cdf(lo + 1, n, 0.5)
    assert tighter < 0.95
    assert lo + hi == n - 1  # symmetric around the middle


def test_too_few_samples_give_an_infinite_interval() -> None:
    assert median_ci_ranks(5) is None
    assert median_ci([1.0, 2.0, 3.0]) == (-math.inf, math.inf)
    summary = summarize([1.0, 2.0, 3.0])
    assert summary.ci_rel == math.inf
    assert summary.to_dict()["ci_low"] is None


def test_summarize_matches_numpy() -> None:
    x = np.random.default_rng(1).lognormal(mean=4.0, sigma=0.2, size=501)
    s = summarize(x)
    assert s.median == pytest.approx(np.median(x))
    assert s.mean == pytest.approx(x.mean())
    assert s.std == pytest.approx(x.std(ddof=1))
    assert s.min == x.min() and s.max == x.max() and s.count == 501
    assert s.p10 == pytest.approx(np.quantile(x, 0.1)) and s.p90 == pytest.approx(np.quantile(x, 0.9))
    assert s.ci_low <= s.median <= s.ci_high
    assert s.ci_half_width == pytest.approx((s.ci_high - s.ci_low) / 2)
    doc = s.to_dict()
    assert set(STAT_FIELDS) - {"stop_reason"} <= set(doc)  # every registered statistic but the protocol's own
    assert list(doc) == list(SUMMARY_FIELDS)


def test_ci_shrinks_with_more_samples() -> None:
    rng = np.random.default_rng(2)
    small = summarize(rng.normal(100, 5, 50))
    large = summarize(rng.normal(100, 5, 5000))
    assert large.ci_rel < small.ci_rel
    assert large.ci_rel < 0.01


@pytest.mark.parametrize("bad", [[], [1.0, 0.0], [1.0, -2.0], [1.0, math.nan], [math.inf]])
def test_summarize_rejects_impossible_samples(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


def test_relative_drift() -> None:
    assert relative_drift(105.0, 100.0) == pytest.approx(0.05)
    assert relative_drift(80.0, 100.0) == pytest.approx(-0.2)
    with pytest.raises(ValueError):
        relative_drift(1.0, 0.0)
