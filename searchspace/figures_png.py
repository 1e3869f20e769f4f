"""The PNGs of :mod:`searchspace.figures` (matplotlib, imported only here, headless Agg): ``hwlut plot``'s pictures.

Call it through :func:`searchspace.figures.render_png`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .figures import Comparison, Heatmap, Scatter, interval_text, verdict_text

__all__ = ["render"]


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
    if not cmp.same_space:
        lines.append(f"B of space {cmp.spaces[1]} on A's layers ({cmp.spaces[0]}): {cmp.layers_matched} line up")
    if cmp.partial:
        lines.append(cmp.match_text())
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


def render(figure: Heatmap | Comparison | Scatter, path: str | Path, *, title: str = "") -> Path:
    """Write ``figure`` as a PNG: the heatmap, the ratio heatmap or the scatter."""
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
