"""Plots of a LUT's figures (matplotlib, headless Agg): shared by the CLI and the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from searchspace.accuracy import AccuracyReport

__all__ = ["plot_report"]


def plot_report(report: AccuracyReport, path: str | Path, *, title: str | None = None) -> Path:
    """A PNG of predicted against measured latency (ms) with the ±10% band (and ±5% lines).

    Raw LUT sums of every network, overhead-corrected sums where known, and
    calibrated predictions of the held-out networks only.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    measured = np.array([r.measured_us for r in report.rows]) / 1000.0
    raw = np.array([r.raw_us for r in report.rows]) / 1000.0
    fig = Figure(figsize=(6.0, 6.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    values = [measured, raw]
    ax.scatter(measured, raw, s=18, marker="o", label=f"raw LUT sum (n={len(raw)})", alpha=0.8)
    if report.overhead_us is not None:
        over = np.array([report.overhead_prediction_us(i) for i in range(len(report.rows))]) / 1000.0
        values.append(over)
        ax.scatter(measured, over, s=14, marker="x", label="sum - (n-1) x overhead", alpha=0.7)
    if report.calibration is not None:
        idx = list(report.held_out_indices)
        cal = np.array([report.calibrated_us(i) for i in idx]) / 1000.0
        values.append(cal)
        ax.scatter(measured[idx], cal, s=22, marker="^", label=f"calibrated, held-out (n={len(idx)})", alpha=0.9)
    every = np.concatenate(values)
    lo, hi = float(every.min()) * 0.9, float(every.max()) * 1.1
    line = np.linspace(lo, hi, 50)
    ax.fill_between(line, line * 0.9, line * 1.1, color="tab:green", alpha=0.12, label="±10%")
    ax.plot(line, line, color="black", lw=0.8)
    for factor in (0.95, 1.05):
        ax.plot(line, line * factor, color="tab:green", lw=0.6, ls="--")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted (ms)")
    ax.set_title(title or "LUT prediction vs measured")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, lw=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
