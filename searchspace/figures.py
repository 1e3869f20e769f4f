"""The pictures of a LUT, one module for the dashboard and ``hwlut plot``: what each shows, and its PNG.

Each figure is first a value (:class:`Heatmap`, :class:`Comparison`,
:class:`Scatter`) computed from a :class:`~searchspace.lutfile.LatencyTable`
or an accuracy report (a dict, as the server and ``hwlut validate`` write
it): the dashboard renders those values as HTML/SVG (``server.dashboard``),
``hwlut plot`` as PNG with :func:`render_png` (matplotlib, imported only
there, headless Agg). Both therefore show the same numbers. This module sits
in :mod:`searchspace` because it is the one package every part may import
(the server imports no torch and no profiler; see ``tests/test_layers.py``);
it needs numpy and scipy only. Latencies are shown in ms.
"""

from __future__ import annotations

import math
import textwrap
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
    """Two LUTs of one space entry by entry: ``ratio = b / a`` per cell, candidates ranked alike per layer.

    ``spearman[i]`` is the rank correlation of layer ``i``'s candidates in
    the two LUTs (None with fewer than 3 shared, or a constant row);
    ``fastest[i]`` the fastest candidate in ``a`` and in ``b``;
    ``differing`` the layers whose fastest candidate differs; ``conditions``
    where the two were measured differently (``runtime.threads: 1 != 4``).
    """

    a: Heatmap
    b: Heatmap
    ratio: tuple[tuple[float | None, ...], ...]
    spearman: tuple[float | None, ...]
    fastest: tuple[tuple[str | None, str | None], ...]
    differing: tuple[int, ...]
    conditions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def geomean_ratio(self) -> float | None:
        """The geometric mean of the ratios (None when no cell is shared)."""
        logs = [math.log(r) for row in self.ratio for r in row if r is not None and r > 0]
        return math.exp(math.fsum(logs) / len(logs)) if logs else None


def _fastest(cands: Sequence[str], row: Sequence[float | None]) -> str | None:
    known = [(v, c) for c, v in zip(cands, row, strict=True) if v is not None]
    return min(known)[1] if known else None


def compare(a: LatencyTable, b: LatencyTable) -> Comparison:
    """``b`` against ``a``; refuses tables of different spaces (their grids do not line up)."""
    from scipy.stats import spearmanr

    if a.space.spec_hash != b.space.spec_hash:
        raise ValueError(f"compare: the LUTs are of different spaces ({a.space.name}, {b.space.name})")
    ha, hb = heatmap(a), heatmap(b)
    ratio, rho, fastest, differing = [], [], [], []
    for i, (ra, rb) in enumerate(zip(ha.values, hb.values, strict=True)):
        ratio.append(tuple(y / x if x and y is not None else None for x, y in zip(ra, rb, strict=True)))
        both = [(x, y) for x, y in zip(ra, rb, strict=True) if x is not None and y is not None]
        value = None
        if len(both) >= 3 and len({x for x, _ in both}) > 1 and len({y for _, y in both}) > 1:
            value = float(spearmanr([x for x, _ in both], [y for _, y in both]).statistic)
        rho.append(value)
        pair = (_fastest(ha.candidates, ra), _fastest(hb.candidates, rb))
        fastest.append(pair)
        if None not in pair and pair[0] != pair[1]:
            differing.append(i)
    conditions = mismatches(a.provenance, b.provenance, fields=CONDITION_FIELDS, ignore=("runtime.phone.serial",))
    return Comparison(ha, hb, tuple(ratio), tuple(rho), tuple(fastest), tuple(differing), tuple(conditions))


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


def _heatmap_axes(fig: Any, ax: Any, hm: Heatmap, grid: Any, label: str, cmap: str, fmt: str, **norm: Any) -> Any:
    import numpy as np

    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, **norm)
    ax.set_xticks(range(len(hm.candidates)), hm.candidates, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(hm.layers)), hm.layers, fontsize=7)
    ax.set_xlabel("candidate")
    ax.set_ylabel("searchable layer: cin→cout, input h×w, stride")
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            r, g, b, _ = image.cmap(image.norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=5.5, color=ink)
    return fig.colorbar(image, ax=ax, label=label)


def _grid(rows: Sequence[Sequence[float | None]]) -> Any:
    import numpy as np

    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _draw_heatmap(fig: Any, hm: Heatmap, title: str) -> None:
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.colors import LogNorm

    lo, hi = hm.bounds()
    norm = LogNorm(vmin=lo, vmax=hi) if 0 < lo < hi else None  # log scale, as the dashboard's heatmap
    _heatmap_axes(fig, ax, hm, _grid(hm.values), "latency (ms, median; log scale)", "viridis", ".3g", norm=norm)
    fixed = ", ".join(f"{n} {v:.3g} ms" if v is not None else f"{n} missing" for n, _, v in hm.fixed)
    ax.set_title(f"{title}\nfixed: {fixed}" if fixed else title, fontsize=9)


def _draw_compare(fig: Any, cmp: Comparison, title: str) -> None:
    import numpy as np
    from matplotlib.colors import LogNorm

    ax = fig.add_subplot(1, 1, 1)
    grid = _grid(cmp.ratio)
    finite = grid[np.isfinite(grid) & (grid > 0)]
    span = float(max(np.max(np.abs(np.log(finite))), 0.01)) if finite.size else 1.0
    norm = LogNorm(vmin=math.exp(-span), vmax=math.exp(span))
    bar = _heatmap_axes(fig, ax, cmp.a, grid, "latency ratio B / A (log scale)", "RdBu_r", ".2f", norm=norm)
    ticks = [t for t in (0.1, 0.2, 0.5, 0.8, 1.0, 1.25, 2.0, 5.0, 10.0) if norm.vmin <= t <= norm.vmax]
    bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
    bar.ax.minorticks_off()
    for i in cmp.differing:
        ax.get_yticklabels()[i].set_color("tab:red")
    lines = [title, f"geometric mean ratio {cmp.geomean_ratio:.3g}" if cmp.geomean_ratio else ""]
    if cmp.differing:
        lines.append(f"fastest candidate differs at layers {', '.join(map(str, cmp.differing))} (red)")
    if cmp.conditions:
        lines.append("measured differently: " + "; ".join(cmp.conditions[:3]))
    ax.set_title("\n".join(x for x in lines if x), fontsize=8)


def _draw_scatter(fig: Any, sc: Scatter, title: str) -> None:
    import numpy as np

    ax = fig.add_subplot(1, 1, 1)
    for (label, pts), marker in zip(sc.series.items(), ("o", "x", "^"), strict=False):
        ax.scatter([m for m, _ in pts], [p for _, p in pts], s=18, marker=marker, label=f"{label} (n={len(pts)})")
    lo, hi = sc.bounds()
    line = np.linspace(lo, hi, 50)
    ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.12, label="±10%")
    ax.plot(line, line, color="black", lw=0.8)
    for factor in (0.95, 1.05):
        ax.plot(line, line * factor, color="tab:green", lw=0.6, ls="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted (ms)")
    extra = [f"verdict {verdict_text(sc.verdict)}"] if sc.verdict is not None else []
    for name in ("raw", "calibrated"):
        line = interval_text(sc.intervals.get(name))
        if line:
            extra.append(f"{name}: {line}")
    ax.set_title("\n".join([title, *(textwrap.shorten(x, 90) for x in extra)]), fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, lw=0.3)


def render_png(figure: Heatmap | Comparison | Scatter, path: str | Path, *, title: str = "") -> Path:
    """Write ``figure`` as a PNG (matplotlib, headless): the heatmap, the ratio heatmap or the scatter."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if isinstance(figure, Scatter):
        fig = Figure(figsize=(6.0, 6.0), dpi=110)
        _draw_scatter(fig, figure, title or "LUT prediction vs measured")
    else:
        hm = figure if isinstance(figure, Heatmap) else figure.a
        fig = Figure(figsize=(9.0, 2.0 + 0.32 * len(hm.layers)), dpi=110, layout="constrained")
        if isinstance(figure, Heatmap):
            _draw_heatmap(fig, figure, title or "LUT latency per layer and candidate")
        else:
            _draw_compare(fig, figure, title or "LUT B / LUT A")
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
