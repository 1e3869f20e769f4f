"""The target projection: the likeliest architecture whose predicted latency meets a target.

A ``--target-latency`` search only *steers* toward the target: its loss
``CE * alpha * (LAT / target) ** beta`` weighs the expected latency of the
mixture, and after a few epochs the argmax architecture can sit well away
from the target. What the user was promised is a network that runs at the
target on the device, so the result also carries the **target
architecture**: among all ``prod_i K_i`` architectures, the one of highest
probability under ``P_theta`` whose predicted latency (the LUT's calibrated
prediction where it serves one, else the raw sum) lies within
``±window`` of the target; when none does (a target outside the space), the
one nearest the target.

The search over the product space is a dynamic programme over the raw LUT
sum, discretised into ``bins`` steps of the space's latency range (the
rounding error of a whole network is at most ``layers / 2`` steps: the
chosen architecture's latency is recomputed exactly afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from searchspace import LatencyTable
from searchspace.calibration import calibrated_prediction

__all__ = ["TARGET_WINDOW", "project_to_target", "raw_for_target", "table_predictor"]

#: The projection looks for architectures predicted within this relative distance of the target.
TARGET_WINDOW = 0.01


def project_to_target(
    log_probs: np.ndarray,
    latency_us: np.ndarray,
    mask: np.ndarray,
    fixed_us: float,
    target_us: float,
    predict: Callable[[float], float] | None = None,
    *,
    window: float = TARGET_WINDOW,
    bins: int = 16384,
) -> list[int]:
    """Candidate indices of the likeliest architecture predicted within ``±window`` of ``target_us``.

    ``log_probs``, ``latency_us`` and ``mask`` have shape ``(layers, candidates)``
    (``mask`` False on padding); ``predict`` maps a raw LUT sum (µs) to the
    predicted latency (identity when None) and must be increasing.
    """
    if not math.isfinite(target_us) or target_us <= 0:
        raise ValueError(f"target latency {target_us!r} µs is not a positive number")
    predict = predict or (lambda raw: raw)
    lat = np.where(mask, latency_us, np.inf)
    lo = lat.min(axis=1)
    offs = np.where(mask, latency_us - lo[:, None], 0.0)
    span = float(offs.max(axis=1).sum())
    step = span / bins if span > 0 else 1.0
    q = np.where(mask, np.rint(offs / step), 0).astype(np.int64)
    size = int(q.max(axis=1).sum()) + 1
    best = np.full(size, -np.inf)
    best[0] = 0.0
    picks = []
    for i in range(lat.shape[0]):
        new = np.full(size, -np.inf)
        arg = np.zeros(size, dtype=np.int64)
        for k in np.flatnonzero(mask[i]):
            shift = int(q[i, k])
            cand = np.full(size, -np.inf)
            cand[shift:] = best[: size - shift] + float(log_probs[i, k])
            better = cand > new
            new[better] = cand[better]
            arg[better] = k
        best, picks = new, [*picks, arg]
    reachable = np.flatnonzero(np.isfinite(best))
    base = float(lo.sum()) + fixed_us
    predicted = np.array([predict(base + s * step) for s in reachable])
    distance = np.abs(predicted / target_us - 1.0)

    def backtrack(state: int) -> list[int]:
        indices = []
        for i in reversed(range(lat.shape[0])):
            k = int(picks[i][state])
            indices.append(k)
            state -= int(q[i, k])
        return indices[::-1]

    def exact_distance(indices: list[int]) -> float:
        raw = fixed_us + math.fsum(float(latency_us[i, k]) for i, k in enumerate(indices))
        return abs(predict(raw) / target_us - 1.0)

    inside = reachable[distance <= window]
    # the likeliest states first; the rounding can put a state's architecture just outside: check exactly
    for state in inside[np.argsort(-best[inside], kind="stable")][:_CHECKED]:
        indices = backtrack(int(state))
        if exact_distance(indices) <= window:
            return indices
    # none inside (a target outside the space): the nearest architecture, the likeliest among ties
    nearest = distance.min()
    ties = reachable[np.isclose(distance, nearest, rtol=0.0, atol=1e-12)]
    return backtrack(int(ties[np.argmax(best[ties])]))


#: How many of the likeliest states within the window are checked exactly before giving up on the window.
_CHECKED = 256


def table_predictor(table: LatencyTable) -> Callable[[float], float]:
    """Raw LUT sum (µs) -> the LUT's calibrated prediction (the raw sum itself without a calibration)."""
    record = table.provenance.get("calibration")

    def predict(raw_us: float) -> float:
        value = calibrated_prediction(raw_us, record)
        return raw_us if value is None else value

    return predict


def raw_for_target(target_us: float, predict: Callable[[float], float]) -> float:
    """The raw LUT sum (µs) that ``predict`` (increasing) maps to ``target_us``, by bisection."""
    lo, hi = 0.0, max(1.0, 2.0 * target_us)
    while predict(hi) < target_us and hi < 1e12:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if predict(mid) < target_us:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
