"""What ``hwlut quickstart`` shows: a progress bar per agent, and the summary tables.

The tables render the same summaries as ``hwlut lut show``
(:func:`profiler.report.layer_grid`, :func:`profiler.report.lut_summary`);
only the agent's pass counts come from its events (:class:`QuickHooks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from profiler.report import layer_grid, lut_summary

__all__ = ["QuickHooks", "Run", "accuracy_summary", "phase_line", "summary"]


@dataclass
class Run:
    """What one job's agent did, for the summary."""

    runtime: str
    label: str
    job_id: int
    wall_s: float = 0.0
    passes: int = 0
    redone: int = 0
    drifts: list[float] = field(default_factory=list)
    lut: Any = None
    path: Path | None = None
    accuracy: dict[str, Any] | None = None
    apart: dict[str, Any] | None = None


class QuickHooks:
    """Agent events → a Rich progress bar, and the run's pass counts."""

    def __init__(self, progress: Any, task: Any, run: Run) -> None:
        self.progress, self.task, self.run = progress, task, run

    def message(self, text: str) -> None:
        self.progress.console.print(f"  [dim]{text}[/dim]")

    def job_started(self, job: dict[str, Any], runtime: Any, todo: int) -> None:
        p, v = job["progress"], job.get("validation") or {"total": 0, "done": 0}
        self.progress.update(self.task, total=p["total"] + v["total"], completed=p["done"] + v["done"])

    def batch_started(self, job_id: int, lease_id: str, keys: Any) -> None:
        self.progress.update(self.task, description=f"{self.run.label}: measuring a batch of {len(keys)}")

    def passed(self, job_id: int, report: Any) -> None:
        self.run.passes += int(report.accepted)
        self.run.redone += int(not report.accepted)
        self.run.drifts.append(report.drift)

    def measured(self, job_id: int, item_id: int, key: str, stats: dict[str, Any]) -> None:
        self.progress.advance(self.task)

    def uploaded(self, job_id: int, accepted: int, duplicates: int) -> None:
        pass


def phase_line(phases: dict[str, float], total: float) -> str:
    """``phases: server start 2.1 s, export 95.3 s, …, other 3.0 s; total 140.2 s`` (other: what no phase holds)."""
    parts = [f"{name} {seconds:.1f} s" for name, seconds in phases.items()]
    parts.append(f"other {max(0.0, total - sum(phases.values())):.1f} s")
    return f"phases: {', '.join(parts)}; total {total:.1f} s"


def _shape(row: dict[str, Any]) -> tuple[int, ...]:
    return (row["cin"], row["cout"], row["h"], row["w"], row["stride"])


def _extremes(row: dict[str, Any]) -> list[str]:
    """The fastest and slowest measured candidate of a layer row (skip aside)."""
    timed = [(us, name) for name, us in row["latency_us"].items() if name != "skip" and us is not None]
    if not timed:
        return ["-", "-"]
    (fast_us, fast), (slow_us, slow) = min(timed), max(timed)
    return [f"{fast} {fast_us:.1f}", f"{slow} {slow_us:.1f}"]


def summary(console: Console, space: Any, runs: list[Run]) -> None:
    """The fastest and slowest block per layer (layers of one shape merged), and the noise per runtime."""
    table = Table(title=f"Fastest and slowest block per layer (µs, median; skip aside) — FBNet {space.resolution}")
    table.add_column("layer")
    table.add_column("shape")
    for run in runs:
        table.add_column(f"{run.label} fastest")
        table.add_column(f"{run.label} slowest")
    grids = [layer_grid(run.lut)["layers"] for run in runs]
    groups: list[list[int]] = []  # runs of consecutive layers with one shape
    for k, row in enumerate(grids[0]):
        if groups and _shape(grids[0][groups[-1][0]]) == _shape(row):
            groups[-1].append(k)
        else:
            groups.append([k])
    for group in groups:
        first, last = grids[0][group[0]], grids[0][group[-1]]
        cells = [cell for grid in grids for cell in _extremes(grid[group[0]])]
        shape = f"{first['cin']}→{first['cout']} {first['h']}x{first['w']} s{first['stride']}"
        index = str(first["index"]) if len(group) == 1 else f"{first['index']}-{last['index']}"
        table.add_row(index, shape, *cells)
    console.print(table)

    noise = Table(
        title="Noise: CI half-width over the median (median, p90 of entries), entries stopped on the CI target, "
        "passes, passes redone for sentinel drift, the largest drift, the runtime's per-call overhead, "
        "seconds the calm gates waited for a steady sentinel (gates that gave up)"
    )
    for col in (
        "runtime",
        "entries",
        "wall s",
        "CI± med",
        "CI± p90",
        "on CI",
        "passes",
        "redone",
        "drift",
        "ovh µs",
        "calm s",
    ):
        noise.add_column(col)
    for run in runs:
        s = lut_summary(run.lut)
        noise.add_row(
            run.label,
            str(s["entries"]),
            f"{run.wall_s:.1f}",
            "-" if s["ci_rel_median"] is None else f"{s['ci_rel_median']:.2%}",
            "-" if s["ci_rel_p90"] is None else f"{s['ci_rel_p90']:.2%}",
            f"{s['stop_reasons'].get('ci', 0)}/{s['entries']}",
            str(run.passes),
            str(run.redone),
            f"{max((abs(d) for d in run.drifts), default=0.0):.1%}",
            "-" if s["overhead_us"] is None else f"{s['overhead_us']:.1f}",
            "-" if s["calm"] is None else f"{s['calm']['waited_s']:.1f} ({s['calm']['not_calm']} gave up)",
        )
    console.print(noise)


def _share(fig: dict[str, Any], ints: dict[str, Any] | None, key: str) -> str:
    bound = (ints or {}).get(key)
    return f"{fig[key]:.0%}" + (f" (≥{bound['lower95']:.0%})" if isinstance(bound, dict) else "")


def _ci(value: float | None, iv: dict[str, Any] | None, fmt: str, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{format(value, fmt)}{unit}"
    if isinstance(iv, dict) and iv.get("low") is not None and iv.get("high") is not None:
        text += f" [{format(iv['low'], fmt)}, {format(iv['high'], fmt)}]"
    return text


def accuracy_summary(console: Console, runs: list[Run], *, quick: bool = False) -> None:
    """Per runtime: the raw and the calibrated LUT sums' figures with intervals, the choice and the verdict."""
    from searchspace.intervals import verdict

    done = [(run, run.accuracy) for run in runs if run.accuracy is not None]
    if not done:
        return
    first = done[0][1]
    label = "QUICK LOOK (32x32, loose timings, few networks) — " if quick else ""
    table = Table(
        title=f"{label}Accuracy: LUT sums against {first['report']['networks']} whole networks measured end to end "
        f"(seed {(first.get('plan') or {}).get('seed')}) within the build; calibrated: chosen by cross-validation, "
        "every error figure out of fold; (≥x%): 95% lower bound, [a, b]: 95% bootstrap interval",
    )
    for col in ("runtime", "prediction", "n", "±5%", "±10%", "MAPE", "bias", "Spearman"):
        table.add_column(col)
    for run, accuracy in done:
        report = accuracy["report"]
        ints = report.get("intervals") or {}
        for name, key in (("raw LUT sum", "raw"), ("calibrated", "calibrated")):
            fig = report.get(key)
            if fig is None:
                continue
            iv = ints.get(key) or {}
            table.add_row(
                run.label,
                f"{name} ({report.get('chosen')})" if key == "calibrated" and report.get("chosen") else name,
                str(fig["n"]),
                _share(fig, iv, "within_5"),
                _share(fig, iv, "within_10"),
                _ci(fig["mape"], iv.get("mape"), ".1f", "%"),
                f"{fig['mean_error_pct']:+.1f}%",
                _ci(fig.get("spearman"), iv.get("spearman"), ".3f"),
            )
    console.print(table)
    for run, acc in done:
        report = acc["report"]
        choice = report.get("choice") or {}
        cal = report.get("calibration")
        if cal:
            console.print(
                f"  {run.label} calibration: {cal['kind']} {cal['slope']:.3f} × sum {cal['intercept_us']:+.1f} µs "
                f"(chosen by {choice.get('method', 'a split')} over {report['networks']} networks, CV MAPE "
                f"{float(choice.get('margin_mape') or 0.0):.2f} points below the raw sum's)",
                highlight=False,
                soft_wrap=True,
            )
        elif choice:
            console.print(
                f"  {run.label}: no calibration served — {choice.get('reason')}", highlight=False, soft_wrap=True
            )
        noise = {"passes": run.passes, "passes_redone": run.redone}
        if run.drifts:
            noise["sentinel_max_abs_drift"] = max(abs(d) for d in run.drifts)
        v = verdict({**report, "quick": quick or report.get("quick")}, noise)
        console.print(
            f"  {run.label} verdict: [bold]{v['level'].upper()}[/] — " + "; ".join(v["reasons"]),
            highlight=False,
            soft_wrap=True,
        )


def apart_summary(console: Console, runs: list[Run]) -> None:
    """The networks measured apart from the build: errors raw, calibrated, and calibrated with the drift out."""
    done = [run for run in runs if run.apart]
    if not done:
        return
    table = Table(
        title="Measured apart from the build: the networks timed after both LUTs were built, beside each LUT's "
        "sentinel (drift: the machine now against the build; a user measures later too)",
    )
    for col in ("runtime", "network", "measured", "raw", "calibrated", "drift", "calibrated, drift out"):
        table.add_column(col)
    for run in done:
        drift = (run.apart.get("sentinel") or {}).get("drift")
        for row in run.apart["networks"]:
            table.add_row(
                run.label,
                row["name"],
                f"{row['measured_us'] / 1000:.3f} ms",
                f"{row['raw_error_pct']:+.1f}%",
                _signed(row.get("calibrated_error_pct")),
                _signed(None if drift is None else 100 * drift),
                _signed(row.get("drift_adjusted_calibrated_error_pct")),
            )
    console.print(table)


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"
