"""``hwlut lut show FILE``: an hwlut LUT file as a layers × candidates table (ms) and its summary figures.

``hwlut lut show --device NAME [--job ID|latest] [--server URL]`` shows a
server's LUT the same way (``--server`` defaults to ``$HWLUT_SERVER``).

A file that ``hwlut validate --write-calibration`` has seen also carries the
validation's accuracy figures (``provenance.accuracy``) and the fitted
calibration (``provenance.calibration``); so does a LUT a server hands out
once it has an accuracy report (its agents measured the job's validation
networks, or ``hwlut validate --here`` uploaded one). Both are printed, and
``--json`` includes them (as ``accuracy`` and ``calibration``, also inside
``summary``).

The figures come from :mod:`profiler.report` (pure functions of the table);
this module only renders them with Rich, or prints them as JSON
(``--json``, latencies in µs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .console import out_console
from .options import lut_file_option, server_lut_option
from .remote import JobRefOpt, ServerOpt, TokenOpt, server_url, token_of

__all__ = ["show"]


def show(
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="An hwlut LUT file (JSON); or --device.", metavar="FILE"),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Show this device's LUT on a server instead of a file.")
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    job: JobRefOpt = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="Print the grid and the figures as JSON (µs).")] = False,
    all_missing: Annotated[bool, typer.Option("--all-missing", help="List every missing key, not only 10.")] = False,
) -> None:
    """Print a LUT's table (layers × candidates, ms), summary figures, accuracy figures and calibration.

    Example: hwlut lut show lut-fbnet-224-ort-1t.json, or hwlut lut show --device laptop --job latest
    """
    from profiler.report import fixed_rows, layer_grid, lut_summary

    if (file is None) == (device is None):
        raise typer.BadParameter("give a LUT FILE or --device NAME (a server's LUT)", param_hint="FILE/--device")
    if device is not None:
        url = server_url(server)
        job_id, table = server_lut_option(url, device, job, token_of(token))
        label = f"{url} {device} LUT {job_id}"
    else:
        assert file is not None
        table = lut_file_option(file, "FILE")
        label = str(file)
    summary, grid, fixed = lut_summary(table), layer_grid(table), fixed_rows(table)
    if as_json:
        doc = {
            "file": label,
            "summary": summary,
            "grid": grid,
            "fixed": fixed,
            "accuracy": summary["accuracy"],
            "calibration": summary["calibration"],
        }
        typer.echo(json.dumps(doc, indent=1))
        return
    console = out_console()
    console.print(_grid_table(summary, grid))
    console.print(_fixed_table(fixed))
    _print_summary(console, label, summary, all_missing)


def _ms(us: float | None) -> str:
    return "" if us is None else f"{us / 1000:.3f}"


def _title(summary: dict[str, Any]) -> str:
    space, rt = summary["space"], summary["runtime"] or {}
    where = f" · {rt.get('runtime')} {rt.get('runtime_version', '')} · {rt.get('threads')} thread(s)" if rt else ""
    return f"{space['name']}-{space['resolution']}{where} — median latency, ms"


def _grid_table(summary: dict[str, Any], grid: dict[str, Any]) -> Table:
    table = Table(title=_title(summary), caption="— missing · err failed · blank: not a candidate there")
    for name, justify in (("#", "right"), ("stage", "right"), ("cin→cout", "right"), ("h×w", "right"), ("s", "right")):
        table.add_column(name, justify=justify, style="dim" if name != "#" else None)
    for name in grid["candidates"]:
        table.add_column(name, justify="right")
    for row in grid["layers"]:
        values = [v for v in row["latency_us"].values() if v is not None]
        fastest = min(values) if values else None
        cells = []
        for name in grid["candidates"]:
            if name not in row["latency_us"]:
                cells.append("")
            elif name in row["errors"]:
                cells.append("[red]err[/]")
            elif row["latency_us"][name] is None:
                cells.append("[dim]—[/]")
            else:
                us = row["latency_us"][name]
                cells.append(f"[bold green]{_ms(us)}[/]" if us == fastest and len(values) > 1 else _ms(us))
        shape = [str(row["index"]), str(row["stage"]), f"{row['cin']}→{row['cout']}", f"{row['h']}×{row['w']}"]
        table.add_row(*shape, str(row["stride"]), *cells)
    return table


def _fixed_table(fixed: list[dict[str, Any]]) -> Table:
    table = Table(title="fixed entries (every network) — ms")
    table.add_column("part")
    table.add_column("key", style="dim")
    table.add_column("ms", justify="right")
    for row in fixed:
        cell = "[red]err[/]" if row["error"] else ("[dim]—[/]" if row["latency_us"] is None else _ms(row["latency_us"]))
        table.add_row(row["name"], row["key"], cell)
    return table


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}%}"


def _print_summary(console: Console, file: str, s: dict[str, Any], all_missing: bool) -> None:
    def line(text: str) -> None:
        console.print(text, highlight=False)

    rt = s["runtime"] or {}
    present = s["total"] - s["missing"]  # entries of the space: a table may hold others too
    state = "complete" if s["complete"] and not s["missing"] else "partial"
    others = s["entries"] - present
    line(
        f"[bold]{file}[/]: {present}/{s['total']} entries ({state}), "
        f"{s['missing']} missing, {len(s['errors'])} error(s)" + (f"; {others} other rows" if others > 0 else "")
    )
    if rt:
        extras = ", ".join(
            f"{k} {'+'.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in rt.items()
            if k not in ("runtime", "runtime_version", "threads")
        )
        line(f"  runtime   {rt.get('runtime')} {rt.get('runtime_version')}, {rt.get('threads')} thread(s); {extras}")
    else:
        line("  runtime   not recorded (no provenance)")
    if s["host"]:
        h = s["host"]
        line(f"  host      {h.get('cpu_model')}, {h.get('cores')} cores, affinity {h.get('affinity_mask')}")
    overhead = "n/a" if s["overhead_us"] is None else f"{s['overhead_us']:.2f} µs per invocation"
    line(f"  overhead  {overhead}")
    if s["ci_rel_median"] is not None:
        line(f"  95% CI    half-width median ±{_pct(s['ci_rel_median'])}, max ±{_pct(s['ci_rel_max'])} of the median")
    if s["stop_reasons"]:
        line("  stop      " + ", ".join(f"{k} {v}" for k, v in s["stop_reasons"].items()))
    if s["passes"] is not None:
        flagged = "" if s["passes_flagged"] is None else f", {s['passes_flagged']} flagged"
        line(
            f"  passes    {s['passes']} accepted, {s['passes_redone'] or 0} redone{flagged}; "
            f"sentinel drift max {_pct(s['sentinel_max_abs_drift'], 1)}"
        )
    if s["wall_s"] is not None:
        share = "" if s["inference_share"] is None else f", {s['inference_share']:.0%} inside inference calls"
        if s.get("cache_eviction_share") is not None:
            share += f", {s['cache_eviction_share']:.0%} evicting caches before timed runs"
        line(f"  wall      {s['wall_s']:.1f} s over {s['sessions']} session(s){share}")
    if s["missing_keys"]:
        shown = s["missing_keys"] if all_missing else s["missing_keys"][:10]
        more = len(s["missing_keys"]) - len(shown)
        line("  missing   " + ", ".join(shown) + (f" … and {more} more (--all-missing)" if more else ""))
    for key, message in s["errors"].items():
        first = message.splitlines()[0] if message else ""
        line(f"  [red]error[/]     {key}: {first}")
    try:
        _print_accuracy(line, s.get("accuracy"), s.get("calibration"), s)
    except (KeyError, TypeError, ValueError) as exc:
        line(f"  accuracy  [red]unreadable[/] provenance.accuracy/calibration: {exc!r}")
    try:
        _print_apart(line, s.get("accuracy_apart"))
    except (KeyError, TypeError, ValueError) as exc:
        line(f"  apart     [red]unreadable[/] provenance.accuracy_apart: {exc!r}")


def _print_apart(line: Any, apart: dict[str, Any] | None) -> None:
    """Networks measured apart from the build (quickstart's FBNet-A/B/C): errors, and the drift since the build."""
    if not apart:
        return
    drift = (apart.get("sentinel") or {}).get("drift")
    since = "" if drift is None else f", the machine {100 * drift:+.1f}% against the build (sentinel)"
    line(f"  apart     networks measured after the build, {apart.get('measured_at')}{since}:")
    for row in apart["networks"]:
        cal, out = row.get("calibrated_error_pct"), row.get("drift_adjusted_calibrated_error_pct")
        line(
            f"    {row['name']:<8} {row['measured_us'] / 1000:8.3f} ms  raw {row['raw_error_pct']:+.1f}%"
            + ("" if cal is None else f"  calibrated {cal:+.1f}%")
            + ("" if out is None else f"  calibrated, drift out {out:+.1f}%")
        )


def _print_accuracy(line: Any, acc: dict[str, Any] | None, cal: dict[str, Any] | None, noise: Any = None) -> None:
    """The accuracy figures (with intervals), the calibration and the verdict a validation stored in the file."""
    from .accuracy_view import accuracy_lines, verdict_lines

    if acc is None:
        for text in verdict_lines(None, noise):
            line(text)
        if cal is not None:
            line(
                f"  calibration {cal.get('kind', 'linear')}: {float(cal['slope']):.4f} x sum "
                f"{float(cal.get('intercept_us', 0.0)):+.1f} µs, fitted on {len(cal.get('fitted_on') or [])} networks"
                " (no accuracy report beside it)"
            )
        return
    plan = acc.get("plan") or {}
    when = f", measured {acc['measured_at']}" if acc.get("measured_at") else ""
    seed = f", seed {plan['seed']}" if plan.get("seed") is not None else ""
    draw = f", {plan['draw']} draw" if plan.get("draw") else ""
    timing = {"apart": ", timed apart from the build", "within": ", timed within the build"}.get(plan.get("timing"), "")
    line(f"  accuracy  {acc.get('networks')} validation networks{seed}{draw}{timing}{when}")
    for text in accuracy_lines({**acc, "calibration": cal if cal is not None else acc.get("calibration")}, noise):
        line(text)
