"""A validation report's picture: predicted against measured latency, for ``hwlut validate`` and the benchmarks.

The drawing is the one the dashboard and ``hwlut plot accuracy`` show
(:func:`searchspace.figures.accuracy_scatter`, rendered by
:func:`searchspace.figures.render_png`): one plotting module for every face.
"""

from __future__ import annotations

from pathlib import Path

from searchspace.accuracy import AccuracyReport
from searchspace.figures import accuracy_scatter, render_png
from searchspace.intervals import verdict

__all__ = ["plot_report"]


def plot_report(report: AccuracyReport, path: str | Path, *, title: str | None = None) -> Path:
    """A PNG of predicted against measured latency (ms) with the ±10% band (and ±5% lines).

    Raw LUT sums of every network, overhead-corrected sums where known, and
    calibrated predictions out of fold (a half-split report: the held-out
    networks only); the title carries the verdict and the intervals of the
    shares within ±5/±10%, MAPE and Spearman.
    """
    scatter = accuracy_scatter(report.to_dict(), verdict(report.summary(), report.meta.get("noise")))
    return render_png(scatter, path, title=title or "LUT prediction vs measured")
