"""Calibrations of raw LUT sums, chosen by seeded cross-validation (pure maths: numpy).

A :class:`Calibration` corrects a raw LUT sum: ``slope * raw + intercept_us``.
:func:`choose_calibration` picks one among :data:`MODELS` (simplest first):

``none``      the raw sum itself;
``overhead``  the sum less ``(entries - 1)`` per-invocation overheads (nothing fitted);
``scale``     ``slope * raw``;
``offset``    ``raw + intercept``;
``linear``    ``slope * raw + intercept``.

Each fitted model is a least-squares fit of the *relative* error, shrunk
toward "no correction" (slope 1, intercept 0) by a ridge penalty that grows
with the fit's residual noise (a Gaussian prior on the parameters, ``shrink``
its weight), so a fit on few, noisy or narrow data stays near the raw sum
while exact data are fitted exactly. Every model is scored on out-of-fold predictions
(``k``-fold, seeded; leave-one-out up to 10 networks). A model is *eligible*
only when its cross-validated MAPE is below the raw sum's and no other figure
a report shows is worse (shares within ±5% and ±10%, the bias's size,
Spearman's rho: :func:`not_worse`); among the eligible ones (and ``none``) the
simplest whose CV MAPE is within one standard error of the best wins (the
"one-SE rule", a shrinkage toward simple models when the data are few).
So a served calibration is never worse than the raw sum out of fold.

:func:`nested_predictions` repeats the whole choice inside each outer fold:
the figures of those predictions include the choice itself (no optimism).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CALIBRATION_KINDS",
    "MIN_CV_NETWORKS",
    "MODELS",
    "Calibration",
    "Selection",
    "calibrated_prediction",
    "choose_calibration",
    "fit_calibration",
    "fold_assignment",
    "nested_predictions",
    "not_worse",
    "serve",
]

#: Every model cross-validation chooses from, simplest first.
MODELS = ("none", "overhead", "scale", "offset", "linear")
#: The kinds a served :class:`Calibration` may have (``none`` serves no calibration).
CALIBRATION_KINDS = ("overhead", "scale", "offset", "linear")
#: How many parameters each model fits (the one-SE rule prefers fewer).
_COMPLEXITY = {"none": 0, "overhead": 0, "scale": 1, "offset": 1, "linear": 2}
#: Fewer networks than this: no calibration is chosen (the raw sum is served).
MIN_CV_NETWORKS = 5
#: Raw sums spanning less than this relative range: the linear model is not tried (its slope is not identifiable).
NARROW_RANGE = 0.10
#: The prior spread of a correction's parameters (relative): a calibration rarely moves a sum by more than ~10%.
PRIOR_SD = 0.10
#: Folds of the cross-validation (leave-one-out below this many networks).
MAX_FOLDS = 10


@dataclass(frozen=True)
class Calibration:
    """A correction of raw LUT sums: ``slope * raw + intercept_us``, fitted on the networks ``fitted_on``."""

    kind: str
    slope: float
    intercept_us: float
    fitted_on: tuple[str, ...]
    fit_seed: int | None = None
    overhead_us: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in CALIBRATION_KINDS:
            raise ValueError(f"calibration kind: unknown {self.kind!r}; known: {', '.join(CALIBRATION_KINDS)}")
        if not (math.isfinite(self.slope) and math.isfinite(self.intercept_us)):
            raise ValueError("calibration: slope and intercept must be finite")

    def predict(self, raw_us: float, entries: int | None = None) -> float:
        """The calibrated prediction (µs) of a raw sum (``overhead``: of a network of ``entries`` entries)."""
        if self.kind == "overhead" and entries is not None and self.overhead_us is not None:
            return raw_us - (entries - 1) * self.overhead_us
        return self.slope * raw_us + self.intercept_us

    def to_dict(self) -> dict[str, Any]:
        """The LUT file's ``provenance.calibration`` record (the searcher reads ``slope`` and ``intercept_us``)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "slope": self.slope,
            "intercept_us": self.intercept_us,
            "unit": "us",
            "fitted_on": list(self.fitted_on),
            "fit_seed": self.fit_seed,
        }
        if self.overhead_us is not None:
            out["overhead_us"] = self.overhead_us
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Calibration:
        """Read a ``provenance.calibration`` record (``kind`` defaults to ``linear``)."""
        over = doc.get("overhead_us")
        return cls(
            kind=str(doc.get("kind", "linear")),
            slope=float(doc["slope"]),
            intercept_us=float(doc.get("intercept_us", 0.0)),
            fitted_on=tuple(str(a) for a in doc.get("fitted_on", ())),
            fit_seed=doc.get("fit_seed"),
            overhead_us=None if over is None else float(over),
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


def _ridge(columns: list[np.ndarray], target: np.ndarray, prior: list[float], scale: list[float], shrink: float):
    """Least squares of ``sum(c_j * p_j) ≈ target``, shrunk toward ``prior`` as much as the data are noisy.

    The penalty ``lam * sum(((p_j - prior_j) * s_j) ** 2)`` has ``lam = shrink * s² / PRIOR_SD²``, ``s²`` the
    residual variance of the plain fit (no residual degrees of freedom: taken as 1, a strong pull): exact
    data are fitted exactly, few or noisy or narrow data stay near ``prior`` (a Gaussian prior of sd ``PRIOR_SD``).
    """
    design = np.column_stack(columns)
    if shrink > 0:
        plain, *_ = np.linalg.lstsq(design, target, rcond=None)
        dof = design.shape[0] - design.shape[1]
        s2 = float(np.sum((design @ plain - target) ** 2) / dof) if dof > 0 else 1.0
        root = math.sqrt(shrink * s2) / PRIOR_SD
        design = np.vstack([design, root * np.diag(scale)])
        target = np.concatenate([target, root * np.asarray(prior) * np.asarray(scale)])
    params, *_ = np.linalg.lstsq(design, target, rcond=None)
    return [float(p) for p in params]


def _fit_params(
    kind: str, raw: np.ndarray, measured: np.ndarray, entries: np.ndarray, overhead_us: float | None, shrink: float
) -> tuple[float, float]:
    """``(slope, intercept_us)`` of ``kind`` fitted on relative errors, shrunk toward ``(1, 0)``."""
    if kind == "none":
        return 1.0, 0.0
    if kind == "overhead":
        assert overhead_us is not None
        return 1.0, -float(np.median(entries) - 1) * overhead_us
    inv = 1.0 / measured
    x = raw * inv  # the raw sum's ratio to the measured latency
    v_scale = float(np.mean(inv))  # an intercept's typical relative size per µs
    ones = np.ones_like(x)
    if kind == "scale":
        (slope,) = _ridge([x], ones, [1.0], [1.0], shrink)
        return slope, 0.0
    if kind == "offset":
        (intercept,) = _ridge([inv], ones - x, [0.0], [v_scale], shrink)
        return 1.0, intercept
    slope, intercept = _ridge([x, inv], ones, [1.0, 0.0], [1.0, v_scale], shrink)
    return slope, intercept


def _predict(kind: str, params: tuple[float, float], raw: np.ndarray, entries: np.ndarray, overhead_us: float | None):
    if kind == "overhead":
        assert overhead_us is not None
        return raw - (entries - 1) * overhead_us
    return params[0] * raw + params[1]


def fit_calibration(
    rows: Sequence[Any],
    kind: str = "linear",
    *,
    fit_seed: int | None = None,
    overhead_us: float | None = None,
    shrink: float = 0.0,
) -> Calibration:
    """Fit ``kind`` on ``rows`` (``raw_us``, ``measured_us``, ``entries``, ``arch``) by least relative squares.

    ``shrink`` (default 0: a plain fit) is the ridge weight pulling toward no correction.
    """
    if kind not in CALIBRATION_KINDS:
        raise ValueError(f"calibration kind: unknown {kind!r}; known: {', '.join(CALIBRATION_KINDS)}")
    if not rows:
        raise ValueError(f"calibration {kind!r} needs at least 1 network to fit")
    if kind == "overhead" and overhead_us is None:
        raise ValueError("calibration 'overhead' needs the LUT's per-invocation overhead")
    raw, measured, entries = _arrays(rows)
    if kind == "linear" and len(rows) < 2 and shrink == 0:
        raise ValueError("calibration 'linear' needs at least 2 networks to fit")
    if kind == "linear" and shrink == 0 and np.ptp(raw / measured) == 0 and np.ptp(1 / measured) == 0:
        kind_params = _fit_params("scale", raw, measured, entries, overhead_us, 0.0)
    else:
        kind_params = _fit_params(kind, raw, measured, entries, overhead_us, shrink)
    slope, intercept = kind_params
    return Calibration(kind, slope, intercept, tuple(r.arch for r in rows), fit_seed, overhead_us)


def _arrays(rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([r.raw_us for r in rows], dtype=float),
        np.array([r.measured_us for r in rows], dtype=float),
        np.array([r.entries for r in rows], dtype=float),
    )


def fold_assignment(n: int, seed: int, folds: int = MAX_FOLDS) -> np.ndarray:
    """The fold of each of ``n`` networks: a seeded permutation cut into ``min(folds, n)`` near-equal folds."""
    k = max(1, min(folds, n))
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=int)
    out[order] = np.arange(n) % k
    return out


@dataclass(frozen=True)
class Selection:
    """What cross-validation chose: per model its out-of-fold predictions and figures, the winner and why."""

    chosen: str
    reason: str
    folds: tuple[int, ...]
    seed: int
    shrink: float
    oof_us: dict[str, tuple[float, ...]]
    scores: dict[str, dict[str, float | None]]
    tried: tuple[str, ...]

    @property
    def margin_mape(self) -> float:
        """How much lower the winner's CV MAPE is than the raw sum's (percentage points)."""
        return self.scores["none"]["mape"] - self.scores[self.chosen]["mape"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``oof_us`` only of the raw sum and the winner, per network in the report's row order)."""
        return {
            "method": f"{len(set(self.folds))}-fold cross-validation",
            "seed": self.seed,
            "shrink": self.shrink,
            "chosen": self.chosen,
            "reason": self.reason,
            "margin_mape": self.margin_mape,
            "tried": list(self.tried),
            "scores": self.scores,
            "folds": list(self.folds),
            "oof_us": list(self.oof_us[self.chosen]),
        }


def _score(pred: np.ndarray, measured: np.ndarray) -> dict[str, float | None]:
    from scipy import stats

    signed = 100.0 * (pred / measured - 1.0)
    err = np.abs(signed)
    rho = None
    if pred.size >= 3 and np.ptp(pred) > 0 and np.ptp(measured) > 0:
        value = float(stats.spearmanr(pred, measured).statistic)
        rho = value if math.isfinite(value) else None
    return {
        "mape": float(np.mean(err)),
        "se": float(np.std(err, ddof=1) / math.sqrt(err.size)) if err.size > 1 else None,
        "within_5": float(np.mean(err <= 5.0 + 1e-9)),
        "within_10": float(np.mean(err <= 10.0 + 1e-9)),
        "bias": float(np.mean(signed)),
        "spearman": rho,
    }


def not_worse(score: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """Whether a model's out-of-fold figures are no worse than the raw sum's in any figure a report shows.

    MAPE strictly lower; shares within ±5% and ±10% no lower; the bias no
    larger in size (to the 0.1 point a table prints) and Spearman's rho no
    lower (to 3 decimals). The rho compared (and reported) is that of the map
    fitted on every network, the one served: a rank correlation cannot be
    flattered by fitting an increasing map (it is the raw sums' own), while
    out-of-fold predictions of different folds' fits reorder near-equal
    networks by a wobble that says nothing about the served map.
    """
    if not (
        score["mape"] < base["mape"]
        and score["within_5"] >= base["within_5"]
        and score["within_10"] >= base["within_10"]
    ):
        return False
    if round(abs(score.get("bias", 0.0)), 1) > round(abs(base.get("bias", 0.0)), 1):
        return False
    rho, rho_base = score.get("spearman"), base.get("spearman")
    return rho_base is None or (rho is not None and round(rho, 3) >= round(rho_base, 3))


def choose_calibration(
    rows: Sequence[Any],
    *,
    overhead_us: float | None = None,
    seed: int = 0,
    shrink: float = 1.0,
    models: Sequence[str] = MODELS,
) -> Selection:
    """Score ``models`` (``none`` always among them) by seeded k-fold CV on ``rows`` and choose one (see module doc)."""
    raw, measured, entries = _arrays(rows)
    n = raw.size
    folds = fold_assignment(n, seed)
    tried = ["none", *(m for m in models if m != "none")]
    why_not: list[str] = []
    if overhead_us is None or not math.isfinite(overhead_us):
        tried = [m for m in tried if m != "overhead"]
    if n < MIN_CV_NETWORKS:
        tried = ["none"]
        why_not.append(f"{n} networks: too few to cross-validate a calibration (needs {MIN_CV_NETWORKS})")
    elif "linear" in tried and raw.max() / max(raw.min(), 1e-12) - 1 < NARROW_RANGE:
        tried = [m for m in tried if m != "linear"]
        why_not.append(
            f"raw sums span {raw.max() / raw.min() - 1:.1%} only: too narrow to fit a slope and an intercept"
        )
    oof: dict[str, np.ndarray] = {}
    for kind in tried:
        if kind == "none":
            oof[kind] = raw.copy()
            continue
        pred = np.empty(n)
        for f in np.unique(folds):
            train, test = folds != f, folds == f
            params = _fit_params(kind, raw[train], measured[train], entries[train], overhead_us, shrink)
            pred[test] = _predict(kind, params, raw[test], entries[test], overhead_us)
        oof[kind] = pred
    scores = {kind: _score(pred, measured) for kind, pred in oof.items()}
    for kind in tried:  # rank correlations: of the map fitted on every network, the one served (see not_worse)
        if kind != "none":
            params = _fit_params(kind, raw, measured, entries, overhead_us, shrink)
            scores[kind]["spearman"] = _score(_predict(kind, params, raw, entries, overhead_us), measured)["spearman"]
    base = scores["none"]
    eligible = [k for k in tried if k == "none" or not_worse(scores[k], base)]
    best = min(eligible, key=lambda k: scores[k]["mape"])
    bar = scores[best]["mape"] + (scores[best]["se"] or 0.0)
    chosen = min((k for k in eligible if scores[k]["mape"] <= bar), key=lambda k: (_COMPLEXITY[k], scores[k]["mape"]))
    if chosen == "none":
        if why_not:
            reason = "; ".join(why_not)
        elif best == "none":
            reason = "no calibration beat the raw sum out of fold"
        else:
            reason = f"{best} is not better than the raw sum by more than one standard error of its CV MAPE"
    else:
        reason = f"{chosen}: CV MAPE {scores[chosen]['mape']:.2f}% against the raw sum's {base['mape']:.2f}%" + (
            f" (best {best} {scores[best]['mape']:.2f}%, within one standard error)" if best != chosen else ""
        )
    return Selection(
        chosen=chosen,
        reason=reason,
        folds=tuple(int(f) for f in folds),
        seed=seed,
        shrink=shrink,
        oof_us={k: tuple(float(p) for p in v) for k, v in oof.items()},
        scores=scores,
        tried=tuple(tried),
    )


def serve(rows: Sequence[Any], selection: Selection, *, overhead_us: float | None = None) -> Calibration | None:
    """The calibration to serve: the chosen model fitted on every network (None when ``none`` won)."""
    if selection.chosen == "none":
        return None
    return fit_calibration(
        rows, selection.chosen, fit_seed=selection.seed, overhead_us=overhead_us, shrink=selection.shrink
    )


def nested_predictions(
    rows: Sequence[Any], selection: Selection, *, overhead_us: float | None = None, models: Sequence[str] = MODELS
) -> tuple[float, ...]:
    """Out-of-fold predictions with the choice made again inside each outer fold (the choice's own optimism out)."""
    raw, _, entries = _arrays(rows)
    folds = np.asarray(selection.folds)
    pred = raw.copy()
    if selection.chosen == "none" and selection.tried == ("none",):
        return tuple(float(p) for p in pred)  # too few networks: the raw sum in every fold
    for f in np.unique(folds):
        train = [r for r, keep in zip(rows, folds != f, strict=True) if keep]
        test = folds == f
        inner = choose_calibration(
            train, overhead_us=overhead_us, seed=selection.seed, shrink=selection.shrink, models=models
        )
        cal = serve(train, inner, overhead_us=overhead_us)
        pred[test] = (
            raw[test]
            if cal is None
            else [cal.predict(r, int(e)) for r, e in zip(raw[test], entries[test], strict=True)]
        )
    return tuple(float(p) for p in pred)
