"""Plots of a LUT's figures (matplotlib, headless Agg): shared by the CLI and the benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from searchspace.accuracy import AccuracyReport

__all__ = ["plot_report"]


def plot_report(report: AccuracyReport, path: str | Path, *, title: str | None = None) -> Path:
    """A PNG of predicted against measured latency (ms) with the ±10% band (and ±5% lines).

    Raw LUT sums of every network, overhead-corrected sums where known, and
    calibrated predictions, out of fold (a half-split report: the held-out
    networks only); a box gives the shares within ±5/±10% with their 95%
    lower bounds, MAPE and Spearman with their intervals, and the verdict.
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
    if report.selection is not None and report.calibration is not None:
        idx = list(range(len(report.rows)))
        label = f"calibrated ({report.chosen}), out of fold (n={len(idx)})"
    elif report.calibration is not None:
        idx = list(report.held_out_indices)
        label = f"calibrated, held-out (n={len(idx)})"
    else:
        idx = []
    if idx:
        cal = np.array([report.calibrated_us(i) for i in idx]) / 1000.0
        values.append(cal)
        ax.scatter(measured[idx], cal, s=22, marker="^", label=label, alpha=0.9)
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
    ax.text(0.98, 0.02, _figures_text(report), transform=ax.transAxes, fontsize=7, ha="right", va="bottom",
            family="monospace", bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85})  # fmt: skip
    ax.grid(True, lw=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _figures_text(report: AccuracyReport) -> str:
    """The figures with their intervals and the verdict, a few lines for the plot's corner."""
    from searchspace.intervals import verdict

    lines = []
    for key in ("raw", "calibrated"):
        iv = report.intervals.get(key)
        if not iv:
            continue
        rho = iv["spearman"]
        rho_s = "n/a" if rho["value"] is None else f"{rho['value']:.3f}"
        lines.append(
            f"{key:<10} ±5% {iv['within_5']['share']:.0%} (≥{iv['within_5']['lower95']:.0%})  "
            f"±10% {iv['within_10']['share']:.0%} (≥{iv['within_10']['lower95']:.0%})  "
            f"MAPE {iv['mape']['value']:.1f}%  rho {rho_s}"
        )
    v = verdict(report.summary(), report.meta.get("noise"))
    lines.append(f"verdict: {v['level']}" + (f" (served: {report.chosen})" if report.chosen else ""))
    return "\n".join(lines)
