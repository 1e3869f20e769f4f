"""How well a LUT's sums predict whole networks: rows, figures, the report. Pure maths (numpy, scipy).

Inputs are :class:`NetworkRow` records (one validation network: its measured
end-to-end latency, the raw LUT sum, the number of entries summed); nothing
here measures or exports. Predictions compared with the measured latency:

``raw``
    the LUT sum, as the searcher uses it;
``overhead``
    the sum less the runtime's fixed per-invocation overhead that the sum
    pays once per entry and a whole network once:
    ``raw - (n_entries - 1) * overhead_us`` (needs no fitting);
``calibrated``
    the calibration that seeded k-fold cross-validation chose among none,
    overhead, scale, offset and linear (:mod:`searchspace.calibration`),
    reported **out of fold** for every network: each network's calibrated
    prediction comes from a fit that never saw it. When no model beats the
    raw sum out of fold, ``none`` wins, no calibration is served and the
    calibrated figures are the raw ones. The rank correlations alone are
    those of the served map (fitted on every network): an increasing map
    keeps the raw sums' order, so no fit can flatter them, while fits of
    different folds would reorder near-equal networks by a wobble the served
    map does not have. ``nested`` repeats the choice inside each fold too
    (figures that include the choice's own luck).

Figures (:class:`Figures`): share within ±5% and ±10%, MAPE, RMSPE, the mean
signed error (bias; positive: the LUT over-predicts), the largest absolute
error, Spearman's and Kendall's rank correlations (:mod:`scipy.stats`); the
report adds their intervals (:mod:`searchspace.intervals`) and, given the
space's LUT-sum range, the figures per stratum of that range.
Errors are ``100 * (predicted / measured - 1)`` percent.

The served :class:`Calibration` serialises to the record that a LUT file
carries as ``provenance.calibration``; the searcher's ``calibrated_latency``
reads ``slope`` and ``intercept_us`` from it: ``slope * raw + intercept_us``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .calibration import (
    CALIBRATION_KINDS,
    MODELS,
    Calibration,
    calibrated_prediction,
    choose_calibration,
    fit_calibration,
    nested_predictions,
    serve,
)
from .intervals import figure_intervals

__all__ = [
    "CALIBRATION_KINDS",
    "MODELS",
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
    "strata_figures",
]


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


def strata_figures(
    rows: Sequence[NetworkRow], predicted: Sequence[float], lo_us: float, hi_us: float, strata: int
) -> list[dict[str, Any]]:
    """Figures per stratum of the LUT-sum range ``[lo_us, hi_us]`` cut in ``strata`` equal bins (by raw sum).

    Each: ``{"index", "lo_us", "hi_us", "n", "raw", "calibrated"}`` (figures null for an empty stratum).
    """
    edges = np.linspace(lo_us, hi_us, strata + 1)
    out = []
    for i in range(strata):
        last = i == strata - 1
        idx = [
            j
            for j, r in enumerate(rows)
            if edges[i] <= r.raw_us < edges[i + 1]
            or (last and r.raw_us >= edges[i + 1])
            or (i == 0 and r.raw_us < lo_us)
        ]
        measured = [rows[j].measured_us for j in idx]
        out.append(
            {
                "index": i,
                "lo_us": float(edges[i]),
                "hi_us": float(edges[i + 1]),
                "n": len(idx),
                "raw": figures([rows[j].raw_us for j in idx], measured).to_dict() if idx else None,
                "calibrated": figures([predicted[j] for j in idx], measured).to_dict() if idx else None,
            }
        )
    return out


@dataclass(frozen=True)
class AccuracyReport:
    """Per-network rows and figures of one LUT against whole networks measured end to end.

    ``raw`` and ``overhead`` figures cover every network (nothing was fitted).
    A cross-validated report (``selection`` set, what :func:`accuracy_report`
    makes) has ``calibrated`` over every network, each prediction out of
    fold (``selection["oof_us"]``), ``calibration`` the chosen model fitted
    on all of them (None when ``none`` won), ``nested`` the figures with the
    choice redone per fold, ``intervals`` per prediction and ``strata``.
    An older half-split report (no ``selection``) has ``calibrated`` over
    the held-out half only; it is still read and checked.
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
    selection: dict[str, Any] | None = None
    nested: Figures | None = None
    intervals: dict[str, Any] = field(default_factory=dict)
    strata: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.selection is not None:
            oof = self.selection.get("oof_us") or []
            folds = self.selection.get("folds") or []
            if len(oof) != len(self.rows) or len(folds) != len(self.rows):
                raise ValueError("accuracy report: out-of-fold predictions must cover every network")
            if self.calibrated is None or self.calibrated.n != len(self.rows):
                raise ValueError("accuracy report: cross-validated figures must cover every network")
            if (self.calibration is None) != (self.selection.get("chosen") == "none"):
                raise ValueError("accuracy report: the served calibration is not the chosen model")
            return
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

    @property
    def chosen(self) -> str | None:
        """The model cross-validation chose (``none`` … ``linear``); None for an older half-split report."""
        return None if self.selection is None else str(self.selection["chosen"])

    def calibrated_us(self, index: int) -> float | None:
        """Row ``index``'s calibrated prediction, out of fold (None: a row a half-split calibration was fitted on)."""
        if self.selection is not None:
            return float(self.selection["oof_us"][index])
        if self.calibration is None or index not in self.held_out_indices:
            return None
        return self.calibration.predict(self.rows[index].raw_us)

    def overhead_prediction_us(self, index: int) -> float | None:
        """The overhead-corrected sum for row ``index``; None without an overhead."""
        if self.overhead_us is None:
            return None
        row = self.rows[index]
        return overhead_prediction(row.raw_us, row.entries, self.overhead_us)

    def _role(self, index: int) -> str | None:
        if self.selection is not None:
            return "out_of_fold"
        return "fit" if index in self.fit_indices else "held_out" if index in self.held_out_indices else None

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
                    "role": self._role(i),
                    "calibrated_us": cal,
                    "calibrated_error_pct": None if cal is None else error_pct(cal, row.measured_us),
                }
            )
        return out

    def summary(self) -> dict[str, Any]:
        """The figures alone (what a LUT file or an estimate carries beside a prediction)."""
        sel = self.selection
        return {
            "networks": len(self.rows),
            "raw": self.raw.to_dict(),
            "raw_held_out": None if self.raw_held_out is None else self.raw_held_out.to_dict(),
            "overhead": None if self.overhead is None else self.overhead.to_dict(),
            "calibrated": None if self.calibrated is None else self.calibrated.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "held_out": len(self.rows) if sel is not None else len(self.held_out_indices),
            "chosen": self.chosen,
            "choice": None
            if sel is None
            else {
                k: sel[k] for k in ("method", "seed", "shrink", "chosen", "reason", "margin_mape", "tried", "scores")
            },
            "nested": None if self.nested is None else self.nested.to_dict(),
            "intervals": self.intervals or None,
            "strata": self.strata,
            "quick": bool(self.meta.get("quick")),
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
            "selection": self.selection,
            "rows": self.row_dicts(),
            "meta": self.meta,
        }


def accuracy_report(
    rows: Sequence[NetworkRow],
    *,
    overhead_us: float | None = None,
    kind: str | None = "auto",
    split_seed: int = 0,
    shrink: float = 1.0,
    range_us: tuple[float, float] | None = None,
    strata: int = 5,
    meta: Mapping[str, Any] | None = None,
) -> AccuracyReport:
    """Raw, overhead-corrected and cross-validated calibrated figures of ``rows``, with intervals.

    ``kind`` ``auto`` lets cross-validation (seeded with ``split_seed``)
    choose among every model; a model name limits the choice to it and
    ``none``; None fits nothing. A network listed twice is counted once.
    ``range_us`` (the space's fastest and slowest LUT sums) adds the
    figures per stratum of that range (``strata`` equal bins).
    """
    unique: dict[str, NetworkRow] = {}
    for row in rows:
        unique.setdefault(row.arch, row)
    kept = tuple(unique.values())
    if not kept:
        raise ValueError("accuracy report: no networks")
    if kind not in (None, "auto", *MODELS):
        raise ValueError(f"calibration kind: unknown {kind!r}; known: auto, {', '.join(MODELS)}")
    measured = [r.measured_us for r in kept]
    raw_pred = [r.raw_us for r in kept]
    raw = figures(raw_pred, measured)
    overhead = None
    if overhead_us is not None and math.isfinite(overhead_us):
        overhead = figures([overhead_prediction(r.raw_us, r.entries, overhead_us) for r in kept], measured)
    else:
        overhead_us = None
    info = dict(meta or {})
    intervals = {"raw": figure_intervals(raw_pred, measured, seed=split_seed)}
    common: dict[str, Any] = {"rows": kept, "raw": raw, "overhead_us": overhead_us, "overhead": overhead, "meta": info}
    strata_of = (lambda pred: strata_figures(kept, pred, *range_us, strata)) if range_us else (lambda pred: None)
    if kind is None:
        return AccuracyReport(**common, intervals=intervals, strata=strata_of(raw_pred))
    models = MODELS if kind == "auto" else ("none", kind)
    selection = choose_calibration(kept, overhead_us=overhead_us, seed=split_seed, shrink=shrink, models=models)
    oof = list(selection.oof_us[selection.chosen])
    nested = nested_predictions(kept, selection, overhead_us=overhead_us, models=models)
    intervals["calibrated"] = figure_intervals(oof, measured, seed=split_seed)
    served = serve(kept, selection, overhead_us=overhead_us)
    calibrated = figures(oof, measured)
    if served is not None:  # rank figures of the served map (calibration.not_worse says why)
        whole = [served.predict(r.raw_us, r.entries) for r in kept]
        ranks = figures(whole, measured)
        calibrated = replace(calibrated, spearman=ranks.spearman, kendall=ranks.kendall)
        intervals["calibrated"]["spearman"] = figure_intervals(whole, measured, seed=split_seed)["spearman"]
    return AccuracyReport(
        **common,
        calibration=served,
        calibrated=calibrated,
        split_seed=split_seed,
        selection=selection.to_dict(),
        nested=figures(nested, measured),
        intervals=intervals,
        strata=strata_of(oof),
    )
