"""A LUT from whole-network latencies: regularised non-negative least squares on the entry-indicator design.

Pure maths (numpy, scipy; no torch): the server may import it. A network's
LUT sum is ``A @ x``, where row ``A[n]`` counts how often network ``n`` uses
each distinct entry of the space (:class:`Design`) and ``x`` is the LUT in µs.
Given measured ``(architecture, latency)`` pairs of one device,
:func:`fit_entries` solves ``min ||A x - y||² + λ ||x||²`` subject to
``x >= 0`` (:func:`scipy.optimize.nnls`, ``λ = ridge · mean(diag AᵀA)``).

**The gauge rule.** Network sums cannot tell apart (1) adding a constant to
every candidate of a layer group (the layers that share their entries: a
stage's repeated layers) while taking it off the fixed part, nor (2) how the
fixed part splits into stem, head, pool and fc. hwlut fixes both by
:data:`GAUGE_RULE` (:func:`apply_gauge`): in every layer group the cheapest
candidate costs 0 (its entries are latencies *above the cheapest choice*, all
that a search compares), and everything no network sum separates goes to the
fixed entries, split among them in proportion to their multiply-accumulates.
The rule changes no network sum, and keeps every entry non-negative.

:func:`cross_validate` reports how well the fit predicts networks it did not
see (k-fold, seeded); for a device whose latencies are block sums it is exact,
for one measured end to end it says how additive the device is.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .accuracy import Figures, figures
from .entries import Entry
from .lutfile import LatencyTable
from .spec import ArchitectureError, SpaceSpec

__all__ = [
    "GAUGE_RULE",
    "Design",
    "FitError",
    "NetworkData",
    "apply_gauge",
    "cross_validate",
    "fit_entries",
    "fit_table",
    "read_networks",
]

GAUGE_RULE = (
    "min0-fixed-macs: in every layer group (layers sharing their entries) the cheapest candidate is 0 µs; "
    "the constant that network sums cannot place goes to the fixed entries (stem, head, pool, fc), "
    "split in proportion to their multiply-accumulates"
)


class FitError(ValueError):
    """Input that cannot be fitted; the message names the row or the field."""


def _macs(entry: Entry) -> float:
    """Multiply-accumulates of a fixed entry (conv, pool, fc), for splitting the fixed constant."""
    if entry.op == "conv":
        return float(entry.cin * entry.cout * entry.kernel**2 * entry.out_h * entry.out_w)
    if entry.op == "pool":
        return float(entry.cin * entry.h * entry.w)
    return float(entry.cin * entry.cout)


@dataclass(frozen=True)
class Design:
    """The entry-indicator design of one space: columns, layer groups and the fixed part."""

    space: SpaceSpec
    entries: tuple[Entry, ...]
    layer_columns: tuple[dict[str, int], ...]
    groups: tuple[tuple[int, ...], ...]
    group_layers: tuple[int, ...]
    fixed: tuple[int, ...]
    fixed_weights: tuple[float, ...]

    @classmethod
    def of(cls, space: SpaceSpec) -> Design:
        """The design of ``space``: one column per distinct entry, in ``space.distinct_entries()`` order."""
        entries = tuple(space.distinct_entries())
        index = {e: i for i, e in enumerate(entries)}
        layer_columns = tuple({c.name: index[layer.entry(c)] for c in layer.candidates} for layer in space.layers)
        groups: dict[tuple[int, ...], int] = {}
        for cols in layer_columns:
            key = tuple(sorted(set(cols.values())))
            groups[key] = groups.get(key, 0) + 1
        fixed_entries = list(dict.fromkeys(space.fixed_entries().values()))
        macs = np.array([_macs(e) for e in fixed_entries])
        return cls(
            space=space,
            entries=entries,
            layer_columns=layer_columns,
            groups=tuple(groups),
            group_layers=tuple(groups.values()),
            fixed=tuple(index[e] for e in fixed_entries),
            fixed_weights=tuple(float(w) for w in macs / macs.sum()),
        )

    @property
    def keys(self) -> list[str]:
        """The canonical keys of the columns."""
        return [e.key for e in self.entries]

    def mean_row(self) -> np.ndarray:
        """The expected row of ``A`` for a network drawn uniformly from the space."""
        row = np.zeros(len(self.entries))
        row[list(self.fixed)] = 1.0
        for cols in self.layer_columns:
            for col in cols.values():
                row[col] += 1.0 / len(cols)
        return row

    def matrix(self, archs: Sequence[str]) -> np.ndarray:
        """``A``: one row per architecture, how often it uses each entry (fixed entries once).

        Raises :class:`FitError` naming the row of an architecture that is not of this space.
        """
        a = np.zeros((len(archs), len(self.entries)))
        a[:, list(self.fixed)] = 1.0
        for n, text in enumerate(archs):
            try:
                arch = self.space.decode(text)
            except ArchitectureError as exc:
                raise FitError(f"row {n + 1}: {exc}") from None
            for cols, op in zip(self.layer_columns, arch.ops, strict=True):
                a[n, cols[op]] += 1.0
        return a


def apply_gauge(design: Design, x: np.ndarray) -> np.ndarray:
    """``x`` moved to the :data:`GAUGE_RULE` gauge; every network sum stays the same."""
    out = np.array(x, dtype=float)
    constant = float(out[list(design.fixed)].sum())
    for cols, layers in zip(design.groups, design.group_layers, strict=True):
        low = float(out[list(cols)].min())
        out[list(cols)] -= low
        constant += layers * low
    out[list(design.fixed)] = constant * np.asarray(design.fixed_weights)
    return out


def fit_entries(a: np.ndarray, y: np.ndarray, *, ridge: float = 1e-8, prior: np.ndarray | None = None) -> np.ndarray:
    """Non-negative ``x`` minimising ``||a x - y||² + λ ||x - prior||²`` (``λ = ridge · mean(diag aᵀa)``).

    Solved as :func:`scipy.optimize.nnls` on the Cholesky factor of the
    regularised normal equations (columns are few: one per distinct entry).
    """
    from scipy.linalg import cho_factor, solve_triangular
    from scipy.optimize import nnls

    n_cols = a.shape[1]
    lam = ridge * float(np.mean(np.sum(a * a, axis=0)))
    target = np.zeros(n_cols) if prior is None else np.asarray(prior, dtype=float)
    gram = a.T @ a + lam * np.eye(n_cols)
    factor, _ = cho_factor(gram, lower=True)
    lower = np.tril(factor)
    rhs = solve_triangular(lower, a.T @ y + lam * target, lower=True)
    x, _ = nnls(lower.T, rhs, maxiter=50 * n_cols)
    return np.asarray(x)


@dataclass(frozen=True)
class NetworkData:
    """Whole-network latencies of one device: architectures and their latencies (µs)."""

    archs: tuple[str, ...]
    latency_us: np.ndarray
    source: str

    @classmethod
    def checked(cls, archs: Sequence[str], latency_us: Sequence[Any], source: str) -> NetworkData:
        """Refuse a latency that is missing, not a number, NaN, infinite or <= 0, naming its row (1-based)."""
        if len(archs) != len(latency_us):
            raise FitError(f"{source}: {len(archs)} architectures but {len(latency_us)} latencies")
        if not archs:
            raise FitError(f"{source}: no networks")
        values = []
        for n, (arch, value) in enumerate(zip(archs, latency_us, strict=True)):
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise FitError(f"{source}: row {n + 1} ({arch}): latency {value!r} is not a number") from None
            if not math.isfinite(v) or v <= 0:
                raise FitError(f"{source}: row {n + 1} ({arch}): latency {value!r} must be a finite number > 0")
            values.append(v)
        return cls(tuple(str(a) for a in archs), np.array(values), source)


def read_networks(path: str | Path, device: str | None = None) -> NetworkData:
    """Read ``(architecture, latency)`` pairs: the HELP JSON file (``device`` picks one) or a CSV.

    CSV: a header with ``arch`` and ``latency_ms`` or ``latency_us``; one network a row.
    JSON: ``{"unit": "ms", "archs": [...], "devices": {name: [...]}}`` (``help-fbnet/``'s format).
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        doc = json.loads(text)
        devices = doc.get("devices") if isinstance(doc, Mapping) else None
        if not isinstance(devices, Mapping) or not isinstance(doc.get("archs"), list):
            raise FitError(f"{path}: expected 'archs' and 'devices' (the HELP JSON format)")
        if device not in devices:
            raise FitError(f"--device: {device!r} is not in {path}; it holds {', '.join(devices)}")
        scale = {"ms": 1000.0, "us": 1.0}.get(str(doc.get("unit", "ms")))
        if scale is None:
            raise FitError(f"{path}: unit: expected 'ms' or 'us', got {doc.get('unit')!r}")
        raw = devices[device]
        data = NetworkData.checked(doc["archs"], raw, f"{path}[{device}]")
        return NetworkData(data.archs, data.latency_us * scale, data.source)
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    column = next((c for c in ("latency_us", "latency_ms") if c in fields), None)
    if "arch" not in fields or column is None:
        raise FitError(f"{path}: the CSV header needs 'arch' and 'latency_ms' or 'latency_us', got {fields}")
    rows = list(reader)
    data = NetworkData.checked([r["arch"] for r in rows], [r[column] for r in rows], str(path))
    scale = 1000.0 if column == "latency_ms" else 1.0
    return NetworkData(data.archs, data.latency_us * scale, data.source)


def cross_validate(
    design: Design, a: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0, ridge: float = 1e-8
) -> Figures:
    """Held-out accuracy: ``folds``-fold (seeded shuffle), each network predicted by a fit without it."""
    n = len(y)
    if n < 2 * folds:
        raise FitError(f"cross-validation needs at least {2 * folds} networks, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    predicted = np.empty(n)
    for held in np.array_split(order, folds):
        train = np.setdiff1d(order, held)
        predicted[held] = a[held] @ fit_entries(a[train], y[train], ridge=ridge)
    return figures(predicted.tolist(), y.tolist())


def fit_table(
    space: SpaceSpec,
    data: NetworkData,
    *,
    ridge: float = 1e-8,
    folds: int = 5,
    seed: int = 0,
    device: Mapping[str, Any] | None = None,
) -> tuple[LatencyTable, dict[str, Any]]:
    """A complete LUT of ``space`` fitted to ``data``, in the :data:`GAUGE_RULE` gauge, and its report.

    The report (also the LUT's ``provenance.fit``) holds the in-sample figures
    (how additive the device is) and the cross-validated ones (held-out networks).
    """
    design = Design.of(space)
    a = design.matrix(data.archs)
    x = apply_gauge(design, fit_entries(a, data.latency_us, ridge=ridge))
    report: dict[str, Any] = {
        "networks": len(data.archs),
        "source": data.source,
        "gauge": GAUGE_RULE,
        "ridge": ridge,
        "in_sample": figures((a @ x).tolist(), data.latency_us.tolist()).to_dict(),
    }
    if len(data.archs) >= 2 * folds:
        cv = cross_validate(design, a, data.latency_us, folds=folds, seed=seed, ridge=ridge)
        report["cross_validated"] = {"folds": folds, "seed": seed, **cv.to_dict()}
    entries = {key: {"median": float(v), "source": "fitted"} for key, v in zip(design.keys, x, strict=True)}
    table = LatencyTable(
        space=space,
        entries=entries,
        device=dict(device) if device else None,
        provenance={"method": f"fitted from {len(data.archs)} networks", "fit": report},
        complete=True,
    )
    return table, report
