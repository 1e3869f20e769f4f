"""Intervals on accuracy figures, and a LUT's verdict from them (scipy.stats).

:func:`share_lower_bound`: the one-sided 95% Clopper–Pearson lower bound on
the true share of networks within a tolerance (``k`` of ``n`` seen within);
50 of 50 gives about 94.2%. :func:`figure_intervals`: that bound for ±5% and
±10%, and seeded percentile-bootstrap 95% intervals for MAPE and Spearman
(:func:`scipy.stats.bootstrap`). :func:`verdict`: *trusted*, *rough* or
*not validated*, with the reasons in words.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "TRUSTED_SHARE",
    "VERDICTS",
    "figure_intervals",
    "networks_needed",
    "share_lower_bound",
    "verdict",
]

#: A LUT is *trusted* when the 95% lower bound on its share within ±10% is at least this.
TRUSTED_SHARE = 0.90
#: Fewer validation networks than this: *not validated*.
MIN_NETWORKS = 5
#: Passes redone per pass, or sentinel drift, above which a measurement counts as made during heavy drift.
HEAVY_REDONE_SHARE = 0.10
HEAVY_DRIFT = 0.20
VERDICTS = ("trusted", "rough", "not validated")


def share_lower_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided ``confidence`` Clopper–Pearson lower bound on a share seen as ``k`` of ``n``."""
    from scipy.stats import binomtest

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"share_lower_bound: need 0 <= k <= n and n > 0, got k={k}, n={n}")
    # the two-sided interval at 1 - 2 * alpha has the one-sided bound at 1 - alpha as its low end
    return float(binomtest(k, n).proportion_ci(confidence_level=1 - 2 * (1 - confidence), method="exact").low)


def networks_needed(share: float = TRUSTED_SHARE, confidence: float = 0.95) -> int:
    """How many networks, all within, it takes for the lower bound to reach ``share``."""
    return math.ceil(math.log(1 - confidence) / math.log(share))


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Any, seed: int, paired: bool) -> tuple[float, float] | None:
    from scipy.stats import bootstrap

    if data[0].size < 3:
        return None
    with warnings.catch_warnings():  # a degenerate resample gives nan, read as "no interval"
        warnings.simplefilter("ignore")
        res = bootstrap(
            data,
            statistic,
            paired=paired,
            vectorized=True,
            n_resamples=999,
            confidence_level=0.95,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def _spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> Any:
    """Spearman's rho along ``axis`` (vectorised: Pearson's r of the ranks); nan for a constant side."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=axis), rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(ra * rb, axis=axis) / np.sqrt(np.sum(ra * ra, axis=axis) * np.sum(rb * rb, axis=axis))


def _mean(x: np.ndarray, axis: int = -1) -> Any:
    return np.mean(x, axis=axis)


def figure_intervals(predicted: Sequence[float], measured: Sequence[float], *, seed: int = 0) -> dict[str, Any]:
    """Intervals of one prediction's figures: ``within_5``/``within_10`` (share, k, n, lower95), ``mape``, ``spearman``.

    ``mape`` and ``spearman`` are ``{"value", "low", "high"}`` (bootstrap 95%,
    seeded; ``low``/``high`` null under 3 networks or for a degenerate set).
    """
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    err = np.abs(100.0 * (p / m - 1.0))
    n = int(err.size)
    out: dict[str, Any] = {"n": n, "confidence": 0.95, "seed": seed}
    for tol in (5, 10):
        k = int(np.sum(err <= tol + 1e-9))
        out[f"within_{tol}"] = {"share": k / n, "k": k, "n": n, "lower95": share_lower_bound(k, n)}
    mape = _bootstrap((err,), _mean, seed, paired=False)
    out["mape"] = {"value": float(np.mean(err)), "low": mape and mape[0], "high": mape and mape[1]}
    rho = float(_spearman(p, m))
    ci = _bootstrap((p, m), _spearman, seed, paired=True) if math.isfinite(rho) else None
    out["spearman"] = {"value": rho if math.isfinite(rho) else None, "low": ci and ci[0], "high": ci and ci[1]}
    return out


def _drift_reason(noise: Mapping[str, Any] | None) -> str | None:
    """ "measured during heavy drift: …" when the LUT's or the networks' passes redone or sentinel drift were high."""
    if not noise:
        return None
    passes, redone = noise.get("passes"), noise.get("passes_redone")
    drift = noise.get("sentinel_max_abs_drift")
    heavy = []
    if isinstance(redone, (int, float)) and redone and (not passes or redone / max(passes, 1) > HEAVY_REDONE_SHARE):
        # ``passes`` counts the accepted passes only: a redone pass is one more timed
        heavy.append(f"{int(redone)} of {int(redone + (passes or 0))} passes redone")
    if isinstance(drift, (int, float)) and abs(drift) > HEAVY_DRIFT:
        heavy.append(f"sentinel drift up to {abs(drift):.0%}")
    return "measured during heavy drift: " + ", ".join(heavy) if heavy else None


def verdict(accuracy: Mapping[str, Any] | None, noise: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A LUT's verdict from its stored accuracy summary (``intervals`` of the served prediction) and its noise.

    ``noise``: ``passes``, ``passes_redone``, ``sentinel_max_abs_drift`` (e.g.
    :func:`profiler.report.lut_summary`'s). Returns ``{"level", "reasons",
    "served"}``: *not validated* without a report or under
    :data:`MIN_NETWORKS` networks; *trusted* when the served prediction's 95%
    lower bound within ±10% is at least :data:`TRUSTED_SHARE`, the
    validation was no quick one and nothing drifted heavily; *rough* else.
    """
    if not accuracy or not isinstance(accuracy.get("raw"), Mapping):
        return {"level": "not validated", "reasons": ["no validation against whole networks"], "served": None}
    try:
        return _verdict(accuracy, noise)
    except (KeyError, TypeError, ValueError) as exc:  # a report written by hand or by another version
        return {"level": "rough", "reasons": [f"the report's figures cannot be read ({exc!r})"], "served": None}


def _verdict(accuracy: Mapping[str, Any], noise: Mapping[str, Any] | None) -> dict[str, Any]:
    n = int(accuracy.get("networks") or accuracy["raw"].get("n") or 0)
    if n < MIN_NETWORKS:
        return {
            "level": "not validated",
            "reasons": [f"{n} networks: too few to say anything (needs {MIN_NETWORKS})"],
            "served": None,
        }
    served = "calibrated" if isinstance(accuracy.get("calibration"), Mapping) else "raw"
    ints = (accuracy.get("intervals") or {}).get(served)
    reasons: list[str] = []
    level = "trusted"
    if not isinstance(ints, Mapping):
        level = "rough"
        reasons.append("the report has no intervals (validated before they were computed): validate again")
    else:
        w10, w5 = ints["within_10"], ints["within_5"]
        float(w10["lower95"]) + float(w5["lower95"]) + int(w10["k"])  # readable, or the report is refused below
        label = "calibrated" if served == "calibrated" else "raw LUT sums"
        if w10["lower95"] < TRUSTED_SHARE:
            level = "rough"
            need = networks_needed()
            reasons.append(
                f"{n} networks, {w10['k']} within ±10% ({label}): the true share is only known to be at least "
                f"{w10['lower95']:.0%} (trusted needs {TRUSTED_SHARE:.0%}: at least {need} networks, nearly all within)"
            )
        else:
            reasons.append(
                f"{n} networks: at least {w10['lower95']:.0%} within ±10% and {w5['lower95']:.0%} within ±5% "
                f"({label}, 95% lower bounds)"
            )
    meta = accuracy.get("meta") if isinstance(accuracy.get("meta"), Mapping) else {}
    if accuracy.get("quick") or meta.get("quick"):
        level = "rough" if level == "trusted" else level
        reasons.append("quick mode: a few networks and short timings, a first look only")
    for source in (noise, accuracy.get("noise")):
        said = _drift_reason(source if isinstance(source, Mapping) else None)
        if said:
            level = "rough" if level == "trusted" else level
            reasons.append(said)
    return {"level": level, "reasons": reasons, "served": served}
