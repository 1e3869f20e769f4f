"""The pictures of a LUT, one module for the dashboard and ``hwlut plot``: what each shows, and its PNG.

Each figure is first a value (:class:`Heatmap`, :class:`Comparison`,
:class:`Scatter`) computed from a :class:`~searchspace.lutfile.LatencyTable`
or an accuracy report (a dict, as the server and ``hwlut validate`` write
it): the dashboard renders those values as HTML/SVG (``server.dashboard``),
``hwlut plot`` as PNG with :func:`render_png` (matplotlib, in :mod:`.figures_png`, imported only
there, headless Agg). Both therefore show the same numbers. This module sits
in :mod:`searchspace` because it is the one package every part may import
(the server imports no torch and no profiler; see ``tests/test_layers.py``);
it needs numpy and scipy only. Latencies are shown in ms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lutfile import LatencyTable
from .provenance import mismatches

__all__ = [
    "CONDITION_FIELDS",
    "REFERENCE_NETWORKS",
    "Comparison",
    "Heatmap",
    "History",
    "Scatter",
    "accuracy_scatter",
    "compare",
    "heatmap",
    "history",
    "interval_text",
    "render_png",
    "verdict_text",
]

#: What two LUTs must share to be compared like for like (dotted provenance paths).
CONDITION_FIELDS = ("runtime", "host.cpu_model", "host.machine", "exporter.format", "exporter.versions")


def _ms(us: Any) -> float | None:
    return float(us) / 1000.0 if isinstance(us, int | float) and math.isfinite(us) else None


@dataclass(frozen=True)
class Heatmap:
    """Searchable layers × candidates (ms): ``values[i][j]`` is layer ``i``'s candidate ``j``; None when missing.

    ``ci_low``/``ci_high`` are the 95% interval of each entry's median (ms,
    None where not measured), ``keys`` the entry keys, ``fixed`` the entries
    every network has (stem, head, pool, fc) as ``(name, key, ms)``.
    """

    layers: tuple[str, ...]
    candidates: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    ci_low: tuple[tuple[float | None, ...], ...]
    ci_high: tuple[tuple[float | None, ...], ...]
    keys: tuple[tuple[str | None, ...], ...]
    fixed: tuple[tuple[str, str, float | None], ...] = ()
    unit: str = "ms"

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value shown (0, 1 when none)."""
        seen = [v for row in self.values for v in row if v is not None]
        return (min(seen), max(seen)) if seen else (0.0, 1.0)

    @property
    def filled(self) -> int:
        """How many cells hold a latency."""
        return sum(v is not None for row in self.values for v in row)


def heatmap(table: LatencyTable) -> Heatmap:
    """The layers × candidates grid of ``table`` with each entry's interval, and its fixed entries."""
    space = table.space
    names: dict[str, None] = dict.fromkeys(space.candidates)
    for layer in space.layers:
        names.update(dict.fromkeys(layer.candidate_names))
    cands = tuple(names)
    values, lows, highs, keys, labels = [], [], [], [], []
    for layer in space.layers:
        allowed = set(layer.candidate_names)
        row_keys = [layer.entry(c).key if c in allowed else None for c in cands]
        stats = [table.entries.get(k) if k else None for k in row_keys]
        values.append(tuple(_ms(s.get("median")) if s else None for s in stats))
        lows.append(tuple(_ms(s.get("ci_low")) if s else None for s in stats))
        highs.append(tuple(_ms(s.get("ci_high")) if s else None for s in stats))
        keys.append(tuple(row_keys))
        labels.append(f"{layer.index}: {layer.cin}→{layer.cout} {layer.h}×{layer.w} s{layer.stride}")
    fixed = tuple(
        (name, entry.key, _ms((table.entries.get(entry.key) or {}).get("median")))
        for name, entry in space.fixed_entries().items()
    )
    return Heatmap(tuple(labels), cands, tuple(values), tuple(lows), tuple(highs), tuple(keys), fixed)


@dataclass(frozen=True)
class Comparison:
    """Two LUTs entry by entry on ``a``'s grid: ``ratio = b / a`` per cell, candidates ranked alike per layer.

    ``spearman[i]`` is the rank correlation of layer ``i``'s candidates in
    the two LUTs (None with fewer than 3 shared, or a constant row);
    ``fastest[i]`` the fastest candidate in ``a`` and in ``b``;
    ``differing`` the layers whose fastest candidate differs; ``conditions``
    where the two were measured differently (``runtime.threads: 1 != 4``).
    ``matched`` counts the entries both hold, ``only_a``/``only_b`` those of
    one side alone, ``spearman_all`` ranks all matched entries;
    ``same_space`` is false when ``b`` is of another space (seen on ``a``'s layers).
    """

    a: Heatmap
    b: Heatmap
    ratio: tuple[tuple[float | None, ...], ...]
    spearman: tuple[float | None, ...]
    fastest: tuple[tuple[str | None, str | None], ...]
    differing: tuple[int, ...]
    conditions: tuple[str, ...] = field(default_factory=tuple)
    matched: int = 0
    only_a: int = 0
    only_b: int = 0
    spearman_all: float | None = None
    same_space: bool = True
    spaces: tuple[str, str] = ("", "")

    @property
    def geomean_ratio(self) -> float | None:
        """The geometric mean of the ratios (None when no cell is shared)."""
        logs = [math.log(r) for row in self.ratio for r in row if r is not None and r > 0]
        return math.exp(math.fsum(logs) / len(logs)) if logs else None

    @property
    def unmatched(self) -> int:
        """How many entries of either LUT have no partner in the other."""
        return self.only_a + self.only_b

    @property
    def layers_matched(self) -> int:
        """How many of ``a``'s layers have at least one candidate in both LUTs."""
        return sum(any(r is not None for r in row) for row in self.ratio)

    @property
    def partial(self) -> bool:
        """Whether the two cover different entries (another space, or an entry missing on one side)."""
        return not self.same_space or self.unmatched > 0

    def match_text(self) -> str:
        """The match in one line: ``72 entries matched, 5 unmatched (5 only in A, 0 only in B); …``."""
        rho = "" if self.spearman_all is None else f"; rank correlation over them ρ {self.spearman_all:.3f}"
        return (
            f"{self.matched} entries matched, {self.unmatched} unmatched "
            f"({self.only_a} only in A, {self.only_b} only in B){rho}"
        )


def _fastest(cands: Sequence[str], row: Sequence[float | None]) -> str | None:
    known = [(v, c) for c, v in zip(cands, row, strict=True) if v is not None]
    return min(known)[1] if known else None


def _rho(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Spearman's ρ of ``pairs`` (None with fewer than 3, or a constant side)."""
    from scipy.stats import spearmanr

    if len(pairs) < 3 or len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
        return None
    return float(spearmanr([x for x, _ in pairs], [y for _, y in pairs]).statistic)


def _on_grid(table: LatencyTable, grid: Heatmap) -> Heatmap:
    """``table``'s entries at ``grid``'s cells (canonical keys): a LUT of another space on this one's layers."""

    def cells(stat: str) -> tuple[tuple[float | None, ...], ...]:
        return tuple(
            tuple(_ms((table.entries.get(k) or {}).get(stat)) if k else None for k in row) for row in grid.keys
        )

    fixed = tuple((n, k, _ms((table.entries.get(k) or {}).get("median"))) for n, k, _ in grid.fixed)
    return Heatmap(grid.layers, grid.candidates, cells("median"), cells("ci_low"), cells("ci_high"), grid.keys, fixed)


def compare(a: LatencyTable, b: LatencyTable) -> Comparison:
    """``b`` against ``a``, on ``a``'s layers × candidates.

    LUTs of different spaces (this machine's against a published phone table,
    say) are compared over the entries they share, matched by entry whatever
    key rendering each uses (:func:`searchspace.reference.match_latencies`);
    refused (ValueError) when they share none.
    """
    from .reference import match_latencies

    same = a.space.spec_hash == b.space.spec_hash
    match = match_latencies(a, b)
    if not same and not match.matched:
        raise ValueError(
            f"compare: the LUTs are of different spaces ({a.space.name}, {b.space.name}) and share no entry"
        )
    ha = heatmap(a)
    hb = heatmap(b) if same else _on_grid(b, ha)
    ratio, rho, fastest, differing = [], [], [], []
    for i, (ra, rb) in enumerate(zip(ha.values, hb.values, strict=True)):
        ratio.append(tuple(y / x if x and y is not None else None for x, y in zip(ra, rb, strict=True)))
        rho.append(_rho([(x, y) for x, y in zip(ra, rb, strict=True) if x is not None and y is not None]))
        pair = (_fastest(ha.candidates, ra), _fastest(hb.candidates, rb))
        fastest.append(pair)
        if None not in pair and pair[0] != pair[1]:
            differing.append(i)
    conditions = mismatches(a.provenance, b.provenance, fields=CONDITION_FIELDS, ignore=("runtime.phone.serial",))
    return Comparison(
        ha,
        hb,
        tuple(ratio),
        tuple(rho),
        tuple(fastest),
        tuple(differing),
        tuple(conditions),
        matched=len(match.matched),
        only_a=len(match.unmatched_left),
        only_b=len(match.unmatched_right),
        spearman_all=_rho([(m.left_us, m.right_us) for m in match.matched]),
        same_space=same,
        spaces=(a.space.name, b.space.name),
    )


@dataclass(frozen=True)
class Scatter:
    """Predicted against measured whole networks (ms), with the ±10% band.

    ``series`` maps a label to ``(measured, predicted)`` points; ``figures``
    the report's summary figures by series; ``verdict`` and ``intervals``
    are shown when the report carries them (empty otherwise).
    """

    series: dict[str, list[tuple[float, float]]]
    figures: dict[str, Mapping[str, Any]]
    verdict: Any = None
    intervals: Mapping[str, Any] = field(default_factory=dict)

    def bounds(self) -> tuple[float, float]:
        """The axis range shared by x and y: every point with a 10% margin."""
        every = [v for pts in self.series.values() for p in pts for v in p]
        return (min(every) * 0.9, max(every) * 1.1) if every else (0.0, 1.0)


def accuracy_scatter(report: Mapping[str, Any], verdict: Any = None) -> Scatter:
    """The points of an accuracy report (``report.rows`` as :meth:`AccuracyReport.to_dict` writes them, µs).

    ``verdict`` is the LUT's verdict where the caller has one (the accuracy
    route's ``verdict``); else the report's own, if any.
    """
    rows = [r for r in report.get("rows") or [] if isinstance(r, Mapping)]
    series: dict[str, list[tuple[float, float]]] = {}
    for label, column in (
        ("raw LUT sum", "raw_us"),
        ("sum - (n-1) × overhead", "overhead_us"),
        ("calibrated, held out", "calibrated_us"),
    ):
        points = [(_ms(r.get("measured_us")), _ms(r.get(column))) for r in rows]
        kept = [(m, p) for m, p in points if m is not None and p is not None]
        if kept:
            series[label] = kept
    figures = {k: report[k] for k in ("raw", "overhead", "calibrated") if isinstance(report.get(k), Mapping)}
    intervals = report.get("intervals") if isinstance(report.get("intervals"), Mapping) else {}
    return Scatter(series, figures, verdict if verdict is not None else report.get("verdict"), intervals or {})


def verdict_text(verdict: Any) -> str | None:
    """A verdict as one line: ``trusted: 40 networks: at least 93% within ±10% …`` (None without one)."""
    if verdict is None:
        return None
    if not isinstance(verdict, Mapping):
        return str(verdict)
    reasons = [str(r) for r in verdict.get("reasons") or []]
    level = verdict.get("level") or verdict.get("label") or "?"
    return f"{level}: {'; '.join(reasons)}" if reasons else str(level)


def _pct(v: Any) -> str:
    return f"{v:.0%}" if isinstance(v, int | float) else "?"


def interval_text(intervals: Any) -> str | None:
    """One prediction's intervals as a line: within ±10% (k of n, 95% lower bound), MAPE and Spearman 95% CIs."""
    if not isinstance(intervals, Mapping):
        return None
    parts = []
    for tol in (10, 5):
        w = intervals.get(f"within_{tol}")
        if isinstance(w, Mapping):
            parts.append(f"±{tol}%: {w.get('k')}/{w.get('n')}, ≥{_pct(w.get('lower95'))}")
    for name in ("mape", "spearman"):
        ci = intervals.get(name)
        if (
            isinstance(ci, Mapping)
            and isinstance(ci.get("low"), int | float)
            and isinstance(ci.get("high"), int | float)
        ):
            parts.append(f"{name.upper() if name == 'mape' else 'ρ'} {ci['low']:.3g}–{ci['high']:.3g}")
    return "; ".join(parts) or None


#: The networks whose LUT sums a device's history follows (FBNet's own, by name: ``SpaceSpec.decode``).
REFERENCE_NETWORKS = ("fbnet-a", "fbnet-b", "fbnet-c")


@dataclass(frozen=True)
class History:
    """A device's LUTs in time order and each one's sum (ms) for the reference networks.

    ``sums[name][i]`` is LUT ``labels[i]``'s sum for network ``name`` (None
    when the LUT cannot price it: another space, a missing entry); ``steps``
    the indices ``i`` where a sum moved by more than ``step_pct`` from the LUT
    before it, or the measurement conditions changed (``changes[i]``).
    """

    labels: tuple[str, ...]
    times: tuple[str, ...]
    sums: dict[str, tuple[float | None, ...]]
    changes: tuple[tuple[str, ...], ...]
    steps: tuple[int, ...]
    step_pct: float


def _network_ms(table: LatencyTable, name: str) -> float | None:
    try:
        return table.network_latency(name) / 1000.0
    except (KeyError, ValueError):  # a missing entry, or a space without this network
        return None


def history(
    luts: Sequence[tuple[str, str, LatencyTable]],
    *,
    networks: Sequence[str] = REFERENCE_NETWORKS,
    step_pct: float = 5.0,
) -> History:
    """``(label, time, table)`` of one device's LUTs, oldest first, as a :class:`History`."""
    sums = {name: tuple(_network_ms(t, name) for _, _, t in luts) for name in networks}
    changes: list[tuple[str, ...]] = [()]
    steps = []
    for i in range(1, len(luts)):
        changes.append(tuple(mismatches(luts[i - 1][2].provenance, luts[i][2].provenance, fields=CONDITION_FIELDS)))
        moved = any(
            a is not None and b is not None and abs(b / a - 1) * 100 > step_pct
            for a, b in ((sums[n][i - 1], sums[n][i]) for n in networks)
        )
        if moved or changes[i]:
            steps.append(i)
    return History(
        tuple(x for x, _, _ in luts), tuple(x for _, x, _ in luts), sums, tuple(changes), tuple(steps), step_pct
    )


def render_png(figure: Heatmap | Comparison | Scatter, path: str | Path, *, title: str = "") -> Path:
    """Write ``figure`` as a PNG (matplotlib, headless): the heatmap, the ratio heatmap or the scatter."""
    from .figures_png import render

    return render(figure, path, title=title)
