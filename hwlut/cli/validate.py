"""``hwlut validate``: how well a LUT file's sums predict whole networks measured here, end to end.

Draws ``--n`` architectures of the LUT's space with ``--seed`` (plus every
``--arch``), exports and measures them interleaved with the LUT's protocol
(:func:`profiler.validate.validate_lut`), and prints per network the measured
latency, the raw LUT sum, the overhead-corrected sum and, for the held-out
half, the calibrated prediction; then the figures (share within ±5% / ±10%,
MAPE, RMSPE, Spearman, Kendall). ``--write-calibration`` stores the
calibration in the LUT file, ``--plot`` writes a PNG, ``--json`` prints the
whole report as one JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from searchspace import ArchitectureError, LatencyTable, LutFileError, MissingEntries

__all__ = ["validate"]

RUNTIMES = ("ort", "tflite")


def validate(
    lut: Annotated[Path, typer.Option("--lut", exists=True, dir_okay=False, help="The hwlut LUT file to validate.")],
    runtime: Annotated[
        str | None, typer.Option("--runtime", help="ort or tflite (default: the LUT's runtime).")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=0, help="Random validation networks to draw.")] = 30,
    seed: Annotated[int, typer.Option(help="Seed of the draw and of the fit/held-out split.")] = 0,
    arch: Annotated[
        list[str] | None, typer.Option("--arch", help="A named architecture to validate too (repeatable).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Runtime threads (default: the LUT's).")] = None,
    calibration: Annotated[str, typer.Option(help="Fitted correction: linear, scale, offset or none.")] = "linear",
    plot: Annotated[Path | None, typer.Option("--plot", dir_okay=False, help="Write a PNG plot here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    write_cal: Annotated[
        bool, typer.Option("--write-calibration", help="Store the calibration and figures in the LUT file.")
    ] = False,
    precision: Annotated[
        float, typer.Option(min=1e-6, help="Stop a network when its median's 95% CI is within ± this share.")
    ] = 0.01,
    time_cap: Annotated[float, typer.Option(min=1e-3, help="Measuring time cap per network, seconds.")] = 3.0,
    slice_s: Annotated[float, typer.Option("--slice", min=0.0, help="Timed seconds per network and pass.")] = 0.05,
    min_passes: Annotated[int, typer.Option(min=1, help="Passes before the CI rule may stop.")] = 3,
    warmup_runs: Annotated[int, typer.Option(min=0, help="Warm-up runs.")] = 10,
    warmup_time: Annotated[float, typer.Option(min=0.0, help="Warm-up seconds.")] = 0.5,
) -> None:
    """Measure validation networks end to end and report how well the LUT's sums predict them."""
    from profiler.accuracy import CALIBRATION_KINDS, plot_report
    from profiler.protocol import ProtocolConfig
    from profiler.runtimes import RuntimeUnavailable
    from profiler.validate import RuntimeMismatch, validate_lut, write_calibration

    from .profile import runtime_from_options

    err = Console(stderr=True)
    kind = None if calibration == "none" else calibration
    if kind is not None and kind not in CALIBRATION_KINDS:
        raise typer.BadParameter(
            f"unknown calibration {calibration!r}; known: {', '.join(CALIBRATION_KINDS)}, none",
            param_hint="--calibration",
        )
    try:
        table = LatencyTable.load(lut)
    except (LutFileError, KeyError, TypeError, ValueError) as exc:
        raise typer.BadParameter(f"{lut}: {exc}", param_hint="--lut") from None
    lut_rt = table.provenance.get("runtime") or {}
    name = runtime or lut_rt.get("runtime") or "ort"
    if name not in RUNTIMES:
        raise typer.BadParameter(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}", param_hint="--runtime")
    rt = runtime_from_options(
        name,
        threads or int(lut_rt.get("threads") or 1),
        xnnpack=bool(lut_rt.get("xnnpack", True)),
        optimization=str(lut_rt.get("optimization", "all")),
    )
    cfg = ProtocolConfig(
        warmup_runs=warmup_runs,
        warmup_s=warmup_time,
        target_rel_ci=precision,
        time_cap_s=time_cap,
        slice_s=slice_s,
        min_passes=min_passes,
    )
    space = table.space
    try:
        with err.status(f"exporting and measuring validation networks of {space.name}-{space.resolution} on {name}"):
            result = validate_lut(table, rt, cfg, n=n, seed=seed, archs=arch or (), calibration=kind)
    except ArchitectureError as exc:
        raise typer.BadParameter(str(exc), param_hint="--arch") from None
    except MissingEntries as exc:
        err.print(f"[red]error[/]: {lut}: {exc}", highlight=False)
        raise typer.Exit(2) from None
    except (RuntimeMismatch, RuntimeUnavailable, ValueError) as exc:
        err.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    except RuntimeError as exc:
        err.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(1) from None

    if write_cal:  # re-read: the file may have gained entries meanwhile
        write_calibration(LatencyTable.load(lut), result, lut)
    if plot is not None:
        plot_report(result.report, plot, title=f"{lut.name}: {space.name}-{space.resolution} on {name}")
    doc = {**result.to_dict(), "lut": str(lut), "plot": str(plot) if plot else None}
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    _print(Console(), doc)
    if write_cal:
        err.print(f"calibration and figures written to {lut}", highlight=False)


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:+6.1f}%"


def _figures_line(label: str, fig: dict[str, Any] | None) -> str:
    if fig is None:
        return f"  {label:<22} n/a"
    rank = (
        f"Spearman {fig['spearman']:.3f}, Kendall {fig['kendall']:.3f}"
        if fig["spearman"] is not None and fig["kendall"] is not None
        else "ranks n/a"
    )
    return (
        f"  {label:<22} n={fig['n']:<3} ±5% {fig['within_5']:6.1%}  ±10% {fig['within_10']:6.1%}  "
        f"MAPE {fig['mape']:5.2f}%  RMSPE {fig['rmspe']:5.2f}%  bias {fig['mean_error_pct']:+5.2f}%  {rank}"
    )


def _print(console: Console, doc: dict[str, Any]) -> None:
    rep = doc["report"]
    rt = doc["runtime"]
    console.print(
        f"[bold]{doc['lut']}[/] ({rep['meta'].get('lut_cache_mode')} caches) against {rep['networks']} networks "
        f"of {rep['meta'].get('space')}-{rep['meta'].get('resolution')} on {rt.get('runtime')} "
        f"{rt.get('runtime_version')}, {rt.get('threads')} thread(s); seed {doc['plan']['seed']}",
        highlight=False,
    )
    console.print(
        f"  {'measured ms':>11} {'LUT sum':>9} {'err':>7} {'-overhd':>7} {'calibr.':>7}  role      arch",
        highlight=False,
    )
    for row in rep["rows"]:
        console.print(
            f"  {row['measured_us'] / 1000:11.3f} {row['raw_us'] / 1000:9.3f} {_pct(row['raw_error_pct'])} "
            f"{_pct(row['overhead_error_pct'])} {_pct(row['calibrated_error_pct'])}  {row['role'] or '-':<8}  "
            f"{row['arch']}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(_figures_line("raw LUT sum", rep["raw"]), highlight=False)
    console.print(_figures_line("raw, held-out only", rep["raw_held_out"]), highlight=False)
    over = rep["overhead_per_invocation_us"]
    console.print(
        _figures_line(f"sum-(n-1)x{over:.1f}µs" if over is not None else "overhead-corrected", rep["overhead"]),
        highlight=False,
    )
    console.print(_figures_line("calibrated, held-out", rep["calibrated"]), highlight=False)
    cal = rep["calibration"]
    if cal is not None:
        console.print(
            f"  calibration {cal['kind']}: {cal['slope']:.4f} x sum {cal['intercept_us']:+.1f} µs, "
            f"fitted on {len(cal['fitted_on'])} networks, reported on {rep['held_out']} others",
            highlight=False,
        )
    if doc.get("plot"):
        console.print(f"  plot: {doc['plot']}", highlight=False)
