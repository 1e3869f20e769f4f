"""Colours and coordinates for the pages' server-rendered figures (HTML cells and inline SVG, no JavaScript)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from searchspace.figures import History, Scatter

__all__ = [
    "HistorySvg",
    "ScatterSvg",
    "history_svg",
    "probability_colour",
    "ratio_colour",
    "scale_colour",
    "scatter_svg",
]

#: A few stops of matplotlib's viridis (what ``hwlut plot lut`` uses), interpolated linearly.
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _mix(stops: tuple[tuple[int, int, int], ...], t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(stops[i], stops[i + 1], strict=True))
    return f"rgb({r},{g},{b})"


def ink(background: str) -> str:
    """A text colour readable on ``background`` (an ``rgb(r,g,b)`` of this module, or a grey ``#ddd``)."""
    if not background.startswith("rgb("):
        return "#555"
    r, g, b = (int(v) for v in background[4:-1].split(","))
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def scale_colour(value: float | None, lo: float, hi: float) -> str:
    """The viridis colour of ``value`` on a log scale between ``lo`` and ``hi`` (grey when missing)."""
    if value is None or value <= 0 or lo <= 0:
        return "#ddd"
    span = math.log(hi / lo) if hi > lo else 1.0
    return _mix(_VIRIDIS, math.log(value / lo) / span)


def probability_colour(p: float | None) -> str:
    """The viridis colour of a probability in [0, 1] (grey when missing)."""
    return "#ddd" if p is None else _mix(_VIRIDIS, p)


def ratio_colour(ratio: float | None, span: float) -> str:
    """Blue below 1, red above (log scale, ``span`` the largest ``|log ratio|``), white at 1."""
    if ratio is None or ratio <= 0:
        return "#ddd"
    t = max(-1.0, min(1.0, math.log(ratio) / span)) if span > 0 else 0.0
    stops = ((33, 102, 172), (247, 247, 247), (178, 24, 43))
    return _mix(stops, (t + 1) / 2)


@dataclass(frozen=True)
class ScatterSvg:
    """Inline-SVG coordinates of an accuracy scatter: points per series, the ±10% band, the diagonal, ticks."""

    size: int
    points: dict[str, list[tuple[float, float, float, float]]]
    band: str
    diagonal: tuple[float, float, float, float]
    ticks: list[tuple[float, str]]


def scatter_svg(sc: Scatter, size: int = 360, pad: int = 40) -> ScatterSvg:
    """Project ``sc`` onto a ``size`` square (y up); each point keeps its (measured, predicted) ms."""
    lo, hi = sc.bounds()
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return round(pad + (v - lo) / span * (size - 2 * pad), 1)

    def y(v: float) -> float:
        return round(size - pad - (v - lo) / span * (size - 2 * pad), 1)

    points = {label: [(x(m), y(p), m, p) for m, p in pts] for label, pts in sc.series.items()}
    corners = [(lo, lo * 0.9), (hi, hi * 0.9), (hi, hi * 1.1), (lo, lo * 1.1)]
    band = " ".join(f"{x(a)},{y(min(max(b, lo), hi))}" for a, b in corners)
    ticks = [(x(lo + span * k / 4), f"{lo + span * k / 4:.3g}") for k in range(5)]
    return ScatterSvg(size, points, band, (x(lo), y(lo), x(hi), y(hi)), ticks)


@dataclass(frozen=True)
class HistorySvg:
    """Inline-SVG coordinates of a history: one polyline per network, a vertical line at each step."""

    width: int
    height: int
    lines: dict[str, list[tuple[float, float, float]]]
    steps: list[float]
    ticks: list[tuple[float, str]]


def history_svg(h: History, width: int = 640, height: int = 260, pad: int = 40) -> HistorySvg:
    """Project ``h``: x the LUT's position in time order, y its sum (ms) from 0."""
    top = max((v for sums in h.sums.values() for v in sums if v is not None), default=1.0) * 1.1
    n = max(len(h.labels) - 1, 1)

    def x(i: int) -> float:
        return round(pad + i / n * (width - 2 * pad), 1)

    def y(v: float) -> float:
        return round(height - pad - v / top * (height - 2 * pad), 1)

    lines = {name: [(x(i), y(v), v) for i, v in enumerate(sums) if v is not None] for name, sums in h.sums.items()}
    ticks = [(y(top * k / 4), f"{top * k / 4:.3g}") for k in range(5)]
    return HistorySvg(width, height, lines, [x(i) - (x(1) - x(0)) / 2 for i in h.steps], ticks)
