"""A new device's LUT from other devices' LUTs plus K measurements on it (few-shot). Pure maths (numpy, scipy).

The model: the new device's LUT is a non-negative combination of **basis
columns** (:class:`Basis`): the LUTs of devices already known (``x_d``, µs)
and a few structural features of each entry (:func:`entry_features`:
point-wise and depth-wise multiply-accumulates, activation elements, kernel
launches, weights), ``x = Φ w``. K measurements fix ``w``:

``networks``
    K whole networks of the new device: ``y_k ≈ a_k · Φ w + c`` (``c``, the
    fixed part's share no basis column carries, goes to the fixed entries
    in proportion to their multiply-accumulates, as :mod:`searchspace.fit`'s
    gauge does); the basis LUTs' own gauge carries over.
``entries``
    K entries measured directly (hwlut can, HELP cannot): ``x_e ≈ φ_e · w``
    fitted in relative error, entry by entry. The basis LUTs must be measured
    (absolute) LUTs here: a fitted LUT's entries carry its gauge.

``w`` is a ridge-regularised non-negative least-squares solution (columns
scaled to their expected network sum under uniform sampling, targets to
their mean, so ``ridge`` is scale-free). Its uncertainty is the Gaussian
posterior ``Σ = σ² (XᵀX + λI)⁻¹`` of the unconstrained problem, with
``σ²`` from the residuals, and gives every entry and network a standard
deviation (:meth:`FewShotModel.entry_std`, :meth:`FewShotModel.network_std`).
**Active selection** (:func:`choose`) picks the K items greedily, each the
one whose prediction the current design leaves most uncertain
(``φᵀ (XᵀX + λI)⁻¹ φ``, a D-optimal design): it needs no measurement, so the
K items are chosen before any is measured. :func:`most_similar` is the
baseline that the model must beat: the one known device whose network sums,
rescaled (``a · s + b``), fit the K measurements best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .entries import Entry
from .fit import Design

__all__ = [
    "FEATURE_NAMES",
    "Basis",
    "FewShotModel",
    "choose",
    "compare",
    "entry_features",
    "fit_fewshot",
    "most_similar",
]

FEATURE_NAMES = ("macs_pointwise", "macs_depthwise", "activations", "kernels", "weights")


def entry_features(entry: Entry) -> tuple[float, ...]:
    """The structural features of one entry, in :data:`FEATURE_NAMES` order (counts, not µs)."""
    e = entry
    if e.op == "tbs":
        mid = e.cin * e.expansion
        pointwise = (e.h * e.w * e.cin + e.out_h * e.out_w * e.cout) * mid / e.groups
        depthwise = e.out_h * e.out_w * mid * e.kernel**2
        activations = e.h * e.w * (e.cin + mid) + e.out_h * e.out_w * (mid + e.cout)
        return (pointwise, depthwise, activations, 3.0, mid * (e.cin + e.cout) / e.groups + mid * e.kernel**2)
    if e.op == "skip" and e.cin == e.cout and e.stride == 1:
        return (0.0, 0.0, 0.0, 0.0, 0.0)
    if e.op in ("skip", "conv"):
        macs = e.out_h * e.out_w * e.cin * e.cout * e.kernel**2
        return (macs, 0.0, e.h * e.w * e.cin + e.out_h * e.out_w * e.cout, 1.0, e.cin * e.cout * e.kernel**2)
    if e.op == "pool":
        return (0.0, 0.0, e.h * e.w * e.cin, 1.0, 0.0)
    return (e.cin * e.cout, 0.0, e.cin + e.cout, 1.0, e.cin * e.cout)


@dataclass(frozen=True)
class Basis:
    """The columns a few-shot LUT is combined from: known devices' LUTs and entry features."""

    design: Design
    names: tuple[str, ...]
    phi: np.ndarray  # entries x columns
    scale: np.ndarray  # each column's expected network sum under uniform sampling

    @classmethod
    def of(cls, design: Design, luts: Mapping[str, Sequence[float]], *, features: bool = True) -> Basis:
        """A basis of ``luts`` (name → one latency per ``design`` column, µs) and, unless off, the features."""
        cols = [np.asarray(v, dtype=float) for v in luts.values()]
        names = [f"lut:{name}" for name in luts]
        for name, col in zip(names, cols, strict=True):
            if col.shape != (len(design.entries),) or not np.all(np.isfinite(col)) or np.any(col < 0):
                raise ValueError(f"{name}: expected {len(design.entries)} finite latencies >= 0 µs")
        if features:
            feats = np.array([entry_features(e) for e in design.entries])
            cols.extend(feats.T)
            names.extend(f"feature:{n}" for n in FEATURE_NAMES)
        if not cols:
            raise ValueError("basis: needs at least one LUT or the features")
        phi = np.stack(cols, axis=1)
        scale = design.mean_row() @ phi
        scale[scale <= 0] = 1.0
        return cls(design, tuple(names), phi, scale)

    def network_columns(self, a: np.ndarray) -> np.ndarray:
        """Each network's (rows of ``a``) sum of every scaled column, plus the fixed-part column of ones."""
        return np.column_stack([a @ (self.phi / self.scale), np.ones(a.shape[0])])

    def entry_columns(self, cols: Sequence[int] | None = None) -> np.ndarray:
        """The scaled columns of the entries ``cols`` (all by default), plus the fixed-part column."""
        rows = self.phi / self.scale
        fixed = np.zeros(len(self.design.entries))
        fixed[list(self.design.fixed)] = self.design.fixed_weights
        full = np.column_stack([rows, fixed])
        return full if cols is None else full[list(cols)]


@dataclass(frozen=True)
class FewShotModel:
    """A fitted few-shot model: weights of the scaled basis columns, their covariance, the target scale."""

    basis: Basis
    mode: str
    weights: np.ndarray
    cov: np.ndarray
    y_scale: float
    residual_rel: float

    def entry_latency(self) -> np.ndarray:
        """The predicted LUT (µs), one per design column."""
        return self.basis.entry_columns() @ self.weights * self.y_scale

    def entry_std(self) -> np.ndarray:
        """Each predicted entry's standard deviation (µs), from the weights' posterior."""
        x = self.basis.entry_columns()
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", x, self.cov, x), 0.0)) * self.y_scale

    def network_latency(self, a: np.ndarray) -> np.ndarray:
        """Predicted whole-network latencies (µs) of the rows of ``a``."""
        return a @ self.entry_latency()

    def network_std(self, a: np.ndarray) -> np.ndarray:
        """Their standard deviations (µs): the weights' uncertainty plus the residual noise."""
        x = self.basis.network_columns(a)
        var = (
            np.einsum("ij,jk,ik->i", x, self.cov, x) + (self.residual_rel * self.network_latency(a) / self.y_scale) ** 2
        )
        return np.sqrt(np.maximum(var, 0.0)) * self.y_scale

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record: mode, the weights by basis column, the residual (relative)."""
        names = [*self.basis.names, "fixed"]
        return {
            "mode": self.mode,
            "weights": {n: float(w) for n, w in zip(names, self.weights, strict=True) if w > 0},
            "residual_rel": self.residual_rel,
        }


def _design_rows(basis: Basis, mode: str, items: Sequence[int] | np.ndarray) -> np.ndarray:
    if mode == "networks":
        return basis.network_columns(np.atleast_2d(np.asarray(items, dtype=float)))
    if mode == "entries":
        return basis.entry_columns(list(items))
    raise ValueError(f"mode: expected 'networks' or 'entries', got {mode!r}")


def fit_fewshot(basis: Basis, mode: str, items: Any, y: Sequence[float], *, ridge: float = 1e-4) -> FewShotModel:
    """Fit the weights to K measurements: ``items`` are design rows (networks) or column indices (entries).

    ``y`` in µs, each > 0. Entries are fitted in relative error (their
    latencies span orders of magnitude); networks in absolute error.
    """
    from scipy.optimize import lsq_linear

    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or y.size == 0 or not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("measurements: expected one or more finite latencies > 0 µs")
    x = _design_rows(basis, mode, items)
    if x.shape[0] != y.size:
        raise ValueError(f"measurements: {x.shape[0]} items but {y.size} latencies")
    y_scale = float(y.mean())
    yn = y / y_scale
    row_w = 1.0 / yn if mode == "entries" else np.ones_like(yn)
    xw, yw = x * row_w[:, None], yn * row_w
    p = x.shape[1]
    penalty = math.sqrt(ridge) * np.eye(p)
    if mode == "networks":
        penalty[-1, -1] = 0.0  # the fixed part is not shrunk
    w = lsq_linear(np.vstack([xw, penalty]), np.concatenate([yw, np.zeros(p)]), bounds=(0.0, np.inf)).x
    resid = yw - xw @ w
    dof = max(y.size - int(np.count_nonzero(w)), 1)
    sigma2 = max(float(resid @ resid) / dof, 1e-6)
    precision = xw.T @ xw + penalty.T @ penalty + 1e-9 * np.eye(p)
    cov = sigma2 * np.linalg.inv(precision)
    return FewShotModel(basis, mode, w, cov, y_scale, math.sqrt(sigma2))


def choose(
    basis: Basis,
    mode: str,
    k: int,
    *,
    pool: np.ndarray | None = None,
    ridge: float = 1e-4,
    given: Sequence[int] = (),
) -> list[int]:
    """Active selection: K items (rows of ``pool`` for networks, design columns for entries), greedily D-optimal.

    Each step takes the item with the largest ``φᵀ M⁻¹ φ`` (``M = XᵀX + λI``
    of the items taken so far), then updates ``M⁻¹`` (Sherman–Morrison).
    ``given``: items measured already; the K new ones complement them.
    """
    if mode == "networks":
        if pool is None:
            raise ValueError("choose: networks need a pool of candidate networks (design rows)")
        cand = basis.network_columns(pool)
        cand = cand / np.maximum(cand @ np.ones(cand.shape[1]), 1e-12)[:, None]  # relative: compare shapes, not sizes
    else:
        cand = basis.entry_columns()
        norm = np.linalg.norm(cand, axis=1)
        cand = np.divide(cand, norm[:, None], out=np.zeros_like(cand), where=norm[:, None] > 0)
    given = list(dict.fromkeys(int(i) for i in given))
    if not 0 < k <= cand.shape[0] - len(given):
        raise ValueError(f"k: expected 1..{cand.shape[0] - len(given)}, got {k}")
    m_inv = np.eye(cand.shape[1]) / ridge
    taken: list[int] = []

    def take(item: int) -> None:
        nonlocal m_inv
        v = m_inv @ cand[item]
        m_inv = m_inv - np.outer(v, v) / (1.0 + cand[item] @ v)

    for item in given:
        take(item)
    for _ in range(k):
        score = np.einsum("ij,jk,ik->i", cand, m_inv, cand)
        score[given + taken] = -np.inf
        best = int(np.argmax(score))
        taken.append(best)
        take(best)
    return taken


def most_similar(sums: Mapping[str, np.ndarray], measured: np.ndarray, items: Sequence[int]) -> tuple[str, np.ndarray]:
    """Baseline: the known device whose sums, rescaled ``a · s + b`` on ``items``, fit ``measured`` best.

    ``sums``: name → that device's latency for every network (or entry) of the
    pool; returns its name and its rescaled latencies of the whole pool.
    """
    best: tuple[float, str, np.ndarray] | None = None
    idx = list(items)
    for name, s in sums.items():
        x = np.column_stack([s[idx], np.ones(len(idx))])
        coef = np.linalg.lstsq(x, measured, rcond=None)[0]
        err = float(np.sum((x @ coef - measured) ** 2))
        if best is None or err < best[0]:
            best = (err, name, s * coef[0] + coef[1])
    if best is None:
        raise ValueError("most_similar: no known device")
    return best[1], best[2]


def compare(predicted: np.ndarray, baseline: tuple[str, np.ndarray], measured: np.ndarray) -> dict[str, Any]:
    """Few-shot against the baseline on the same held-out items: both figures and a one-line verdict."""
    from .accuracy import figures

    ours = figures(list(predicted), list(measured)).to_dict()
    theirs = figures(list(baseline[1]), list(measured)).to_dict()
    beats = (ours["spearman"] or -1.0) > (theirs["spearman"] or -1.0) and ours["mape"] < theirs["mape"]
    verdict = (
        f"few-shot {'beats' if beats else 'does NOT beat'} the most similar device ({baseline[0]}), rescaled: "
        f"Spearman {ours['spearman']:.4f} vs {theirs['spearman']:.4f}, "
        f"MAPE {ours['mape']:.2f}% vs {theirs['mape']:.2f}%"
    )
    return {"fewshot": ours, "baseline": {"device": baseline[0], **theirs}, "beats_baseline": beats, "verdict": verdict}
