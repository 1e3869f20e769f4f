"""How well a LUT's sums predict whole networks: rows, figures, calibration. Pure maths (numpy, scipy).

Inputs are :class:`NetworkRow` records (one validation network: its measured
end-to-end latency, the raw LUT sum, the number of entries summed); nothing
here measures or exports. Three predictions are compared with the measured
latency:

``raw``
    the LUT sum, as the searcher uses it;
``overhead``
    calibration (a): the sum less the runtime's fixed per-invocation overhead
    that the sum pays once per entry and a whole network once:
    ``raw - (n_entries - 1) * overhead_us`` (needs no fitting);
``calibrated``
    calibration (b): a :class:`Calibration` fitted on one half of the networks
    (a seeded split, :func:`split_indices`) and evaluated **only** on the other
    half. :func:`accuracy_report` is the one way to get calibrated figures;
    an :class:`AccuracyReport` holds the fitting and the held-out indices,
    refuses to exist when they overlap or the calibration names a held-out
    network, and a fitting row carries no calibrated prediction at all.

Figures (:class:`Figures`): share within ±5% and ±10%, mean absolute
percentage error (MAPE), root-mean-square percentage error (RMSPE), the mean
signed error (bias; positive: the LUT over-predicts), the largest absolute
error, Spearman's and Kendall's rank correlations (:mod:`scipy.stats`).
Errors are ``100 * (predicted / measured - 1)`` percent.

A fitted :class:`Calibration` serialises to the record that a LUT file carries
as ``provenance.calibration`` (``{"kind", "slope", "intercept_us",
"fitted_on", ...}``); the searcher's ``calibrated_latency`` reads ``slope``
and ``intercept_us`` from it: ``slope * raw + intercept_us``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CALIBRATION_KINDS",
    "AccuracyReport",
    "Calibration",
    "Figures",
    "NetworkRow",
    "accuracy_report",
    "calibrated_prediction",
    "error_pct",
    "figures",
    "fit_calibration",
    "overhead_prediction",
    "split_indices",
]

#: ``linear``: ``slope * raw + intercept``; ``scale``: ``slope * raw``; ``offset``: ``raw + intercept``.
CALIBRATION_KINDS = ("linear", "scale", "offset")

#: The fewest networks each kind needs to be fitted on.
_MIN_FIT = {"linear": 2, "scale": 1, "offset": 1}


def error_pct(predicted: float, measured: float) -> float:
    """``100 * (predicted / measured - 1)``: positive when the prediction is too high."""
    if not measured > 0:
        raise ValueError(f"measured latency must be > 0 µs, got {measured!r}")
    return 100.0 * (predicted / measured - 1.0)


def overhead_prediction(raw_us: float, n_entries: int, overhead_us: float) -> float:
    """Calibration (a): the LUT sum less ``(n_entries - 1)`` per-invocation overheads."""
    return raw_us - (n_entries - 1) * overhead_us


@dataclass(frozen=True)
class NetworkRow:
    """One validation network: measured latency, raw LUT sum and how many entries it summed (µs)."""

    arch: str
    measured_us: float
    raw_us: float
    entries: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.measured_us) and self.measured_us > 0):
            raise ValueError(f"{self.arch}: measured_us must be a finite latency > 0, got {self.measured_us!r}")
        if not (math.isfinite(self.raw_us) and self.raw_us >= 0):
            raise ValueError(f"{self.arch}: raw_us must be a finite latency >= 0, got {self.raw_us!r}")
        if self.entries < 1:
            raise ValueError(f"{self.arch}: entries must be >= 1, got {self.entries}")

    @property
    def raw_error_pct(self) -> float:
        """The raw LUT sum's error (%)."""
        return error_pct(self.raw_us, self.measured_us)


@dataclass(frozen=True)
class Figures:
    """Accuracy figures of one kind of prediction over ``n`` networks (shares in [0, 1], errors in %)."""

    n: int
    within_5: float
    within_10: float
    mape: float
    rmspe: float
    mean_error_pct: float
    max_abs_error_pct: float
    spearman: float | None
    kendall: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (rank correlations are null where undefined)."""
        return asdict(self)


def _rank_correlation(kind: str, a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's or Kendall's coefficient; None for fewer than 3 points or a constant side."""
    from scipy import stats

    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    result = stats.spearmanr(a, b) if kind == "spearman" else stats.kendalltau(a, b)
    value = float(result.statistic)
    return value if math.isfinite(value) else None


def figures(predicted: Sequence[float], measured: Sequence[float]) -> Figures:
    """The accuracy figures of ``predicted`` against ``measured`` (same order, µs)."""
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    if p.shape != m.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"figures: need two equally long, non-empty sequences, got {p.shape} and {m.shape}")
    if not np.all(m > 0):
        raise ValueError("figures: every measured latency must be > 0")
    err = 100.0 * (p / m - 1.0)
    absolute = np.abs(err)
    # A tiny tolerance so that an error of exactly 5% (or 10%) in decimal counts as within.
    tol = 1e-9
    return Figures(
        n=int(p.size),
        within_5=float(np.mean(absolute <= 5.0 + tol)),
        within_10=float(np.mean(absolute <= 10.0 + tol)),
        mape=float(np.mean(absolute)),
        rmspe=float(np.sqrt(np.mean(err**2))),
        mean_error_pct=float(np.mean(err)),
        max_abs_error_pct=float(np.max(absolute)),
        spearman=_rank_correlation("spearman", p, m),
        kendall=_rank_correlation("kendall", p, m),
    )


@dataclass(frozen=True)
class Calibration:
    """A correction of raw LUT sums: ``slope * raw + intercept_us``, fitted on the networks ``fitted_on``."""

    kind: str
    slope: float
    intercept_us: float
    fitted_on: tuple[str, ...]
    fit_seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in CALIBRATION_KINDS:
            raise ValueError(f"calibration kind: unknown {self.kind!r}; known: {', '.join(CALIBRATION_KINDS)}")
        if not (math.isfinite(self.slope) and math.isfinite(self.intercept_us)):
            raise ValueError("calibration: slope and intercept must be finite")

    def predict(self, raw_us: float) -> float:
        """The calibrated prediction (µs) for a raw LUT sum."""
        return self.slope * raw_us + self.intercept_us

    def to_dict(self) -> dict[str, Any]:
        """The LUT file's ``provenance.calibration`` record (the searcher reads ``slope`` and ``intercept_us``)."""
        return {
            "kind": self.kind,
            "slope": self.slope,
            "intercept_us": self.intercept_us,
            "unit": "us",
            "fitted_on": list(self.fitted_on),
            "fit_seed": self.fit_seed,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Calibration:
        """Read a ``provenance.calibration`` record (``kind`` defaults to ``linear``)."""
        return cls(
            kind=str(doc.get("kind", "linear")),
            slope=float(doc["slope"]),
            intercept_us=float(doc.get("intercept_us", 0.0)),
            fitted_on=tuple(str(a) for a in doc.get("fitted_on", ())),
            fit_seed=doc.get("fit_seed"),
        )


def calibrated_prediction(raw_us: float, record: Any) -> float | None:
    """A LUT's calibrated prediction (µs) of a raw sum, from its ``provenance.calibration`` record.

    The one reading of the record for every part that serves or uses it (the
    server's ``calibrated_us``, the searcher): None when ``record`` is no
    usable calibration or the prediction is not finite.
    """
    if not isinstance(record, Mapping) or "slope" not in record:
        return None
    try:
        value = Calibration.from_dict(record).predict(raw_us)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def fit_calibration(rows: Sequence[NetworkRow], kind: str = "linear", *, fit_seed: int | None = None) -> Calibration:
    """Fit ``kind`` on ``rows`` by least squares on the *relative* error (what MAPE and RMSPE count).

    Minimises ``sum(((slope * raw + intercept) / measured - 1) ** 2)`` over the
    free parameters of ``kind`` (``scale`` fixes the intercept at 0,
    ``offset`` the slope at 1).
    """
    if kind not in CALIBRATION_KINDS:
        raise ValueError(f"calibration kind: unknown {kind!r}; known: {', '.join(CALIBRATION_KINDS)}")
    if len(rows) < _MIN_FIT[kind]:
        raise ValueError(f"calibration {kind!r} needs at least {_MIN_FIT[kind]} networks to fit, got {len(rows)}")
    raw = np.array([r.raw_us for r in rows], dtype=float)
    inv = 1.0 / np.array([r.measured_us for r in rows], dtype=float)
    x = raw * inv  # raw / measured
    if kind == "scale":
        slope, intercept = float(np.sum(x) / np.sum(x * x)), 0.0
    elif kind == "offset":
        slope, intercept = 1.0, float(np.sum((1.0 - x) * inv) / np.sum(inv * inv))
    else:
        design = np.column_stack([x, inv])
        if np.linalg.matrix_rank(design) < 2:  # every network equally long: no slope to fit
            slope, intercept = float(np.sum(x) / np.sum(x * x)), 0.0
        else:
            (slope, intercept), *_ = np.linalg.lstsq(design, np.ones_like(x), rcond=None)
            slope, intercept = float(slope), float(intercept)
    return Calibration(kind, slope, intercept, tuple(r.arch for r in rows), fit_seed)


def split_indices(n: int, seed: int, fit_share: float = 0.5) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A seeded split of ``range(n)`` into (fitting, held-out) indices, both sorted, disjoint, both non-empty.

    The fitting half has ``floor(n * fit_share)`` networks (at least 1, at most ``n - 1``).
    """
    if n < 2:
        raise ValueError(f"split: need at least 2 networks, got {n}")
    if not 0 < fit_share < 1:
        raise ValueError(f"split: fit_share must be in (0, 1), got {fit_share}")
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(int(n * fit_share), 1), n - 1)
    return tuple(sorted(int(i) for i in order[:k])), tuple(sorted(int(i) for i in order[k:]))


@dataclass(frozen=True)
class AccuracyReport:
    """Per-network rows and figures of one LUT against whole networks measured end to end.

    ``raw`` and ``overhead`` figures cover every network (nothing was fitted);
    ``raw_held_out`` the held-out networks only, for a like-for-like
    comparison with ``calibrated``, which covers the held-out networks only.
    """

    rows: tuple[NetworkRow, ...]
    raw: Figures
    raw_held_out: Figures | None = None
    overhead_us: float | None = None
    overhead: Figures | None = None
    calibration: Calibration | None = None
    calibrated: Figures | None = None
    fit_indices: tuple[int, ...] = ()
    held_out_indices: tuple[int, ...] = ()
    split_seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fit, held = set(self.fit_indices), set(self.held_out_indices)
        if fit & held:
            raise ValueError(f"accuracy report: networks {sorted(fit & held)} are both fitted on and held out")
        if not (fit | held) <= set(range(len(self.rows))):
            raise ValueError("accuracy report: a split index is out of range")
        archs_held = {self.rows[i].arch for i in held}
        if self.calibration is not None:
            if archs_held & set(self.calibration.fitted_on):
                raise ValueError("accuracy report: the calibration was fitted on a held-out network")
            if self.calibrated is None or self.calibrated.n != len(held):
                raise ValueError("accuracy report: calibrated figures must cover exactly the held-out networks")

    def calibrated_us(self, index: int) -> float | None:
        """The calibrated prediction of row ``index``; None for a row the calibration was fitted on."""
        if self.calibration is None or index not in self.held_out_indices:
            return None
        return self.calibration.predict(self.rows[index].raw_us)

    def overhead_prediction_us(self, index: int) -> float | None:
        """Calibration (a) for row ``index``; None without an overhead."""
        if self.overhead_us is None:
            return None
        row = self.rows[index]
        return overhead_prediction(row.raw_us, row.entries, self.overhead_us)

    def row_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per network: measured, raw, overhead-corrected and calibrated, with errors."""
        out = []
        for i, row in enumerate(self.rows):
            over = self.overhead_prediction_us(i)
            cal = self.calibrated_us(i)
            out.append(
                {
                    "arch": row.arch,
                    "measured_us": row.measured_us,
                    "raw_us": row.raw_us,
                    "raw_error_pct": row.raw_error_pct,
                    "entries": row.entries,
                    "overhead_us": over,
                    "overhead_error_pct": None if over is None else error_pct(over, row.measured_us),
                    "role": "fit" if i in self.fit_indices else "held_out" if i in self.held_out_indices else None,
                    "calibrated_us": cal,
                    "calibrated_error_pct": None if cal is None else error_pct(cal, row.measured_us),
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        """The figures alone (what a LUT file or an estimate carries beside a prediction)."""
        return {
            "networks": len(self.rows),
            "raw": self.raw.to_dict(),
            "raw_held_out": None if self.raw_held_out is None else self.raw_held_out.to_dict(),
            "overhead": None if self.overhead is None else self.overhead.to_dict(),
            "calibrated": None if self.calibrated is None else self.calibrated.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "held_out": len(self.held_out_indices),
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report, JSON-ready (latencies in µs, errors in %)."""
        return {
            "unit": "us",
            **self.summary(),
            "overhead_per_invocation_us": self.overhead_us,
            "split": {
                "seed": self.split_seed,
                "fit": list(self.fit_indices),
                "held_out": list(self.held_out_indices),
            },
            "rows": self.row_dicts(),
            "meta": self.meta,
        }


def accuracy_report(
    rows: Sequence[NetworkRow],
    *,
    overhead_us: float | None = None,
    kind: str | None = "linear",
    split_seed: int = 0,
    fit_share: float = 0.5,
    meta: Mapping[str, Any] | None = None,
) -> AccuracyReport:
    """Raw, overhead-corrected and (held-out) calibrated figures of ``rows``.

    The calibration ``kind`` (None: no fitted calibration) is fitted on a
    seeded ``fit_share`` of the networks and evaluated on the rest only. A
    network listed twice is counted once (so it cannot sit on both sides).
    Too few networks to fit and hold out some: no calibration, the raw and
    overhead figures still.
    """
    unique: dict[str, NetworkRow] = {}
    for row in rows:
        unique.setdefault(row.arch, row)
    kept = tuple(unique.values())
    if not kept:
        raise ValueError("accuracy report: no networks")
    measured = [r.measured_us for r in kept]
    raw = figures([r.raw_us for r in kept], measured)
    overhead = None
    if overhead_us is not None and math.isfinite(overhead_us):
        overhead = figures([overhead_prediction(r.raw_us, r.entries, overhead_us) for r in kept], measured)
    else:
        overhead_us = None
    common: dict[str, Any] = {
        "rows": kept,
        "raw": raw,
        "overhead_us": overhead_us,
        "overhead": overhead,
        "meta": dict(meta or {}),
    }
    if kind is None or len(kept) < 2:
        return AccuracyReport(**common)
    fit_idx, held_idx = split_indices(len(kept), split_seed, fit_share)
    if len(fit_idx) < _MIN_FIT.get(kind, 1):
        return AccuracyReport(**common)
    calibration = fit_calibration([kept[i] for i in fit_idx], kind, fit_seed=split_seed)
    held = [kept[i] for i in held_idx]
    held_measured = [r.measured_us for r in held]
    return AccuracyReport(
        **common,
        raw_held_out=figures([r.raw_us for r in held], held_measured),
        calibration=calibration,
        calibrated=figures([calibration.predict(r.raw_us) for r in held], held_measured),
        fit_indices=fit_idx,
        held_out_indices=held_idx,
        split_seed=split_seed,
    )
