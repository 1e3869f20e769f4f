"""``hwlut measure-arch``: one whole network measured end to end, against its LUT sum.

Exports the network as one artifact (through the artifact cache), times it
with the LUT's own protocol (:func:`profiler.network.measure_network`) and
prints its measured latency; with ``--lut`` also the LUT-sum prediction and
the error, and — the LUT's own sentinel entry timed in the same passes —
how much slower or faster the machine is now than when the LUT was built,
with the drift-adjusted comparison next to the raw one. ``--json`` prints
one JSON object with ``measured_us``, ``predicted_us`` and ``error_pct``
(null without ``--lut``), ``drift`` and the statistics behind them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from searchspace import ArchitectureError, MissingEntries, SpecError, load_space

from .console import out_console
from .options import (
    PROTOCOL_DEFAULTS,
    ProtocolOptions,
    lut_file_option,
    protocol_options,
)

__all__ = ["measure_arch"]

RUNTIMES = ("ort", "tflite")


@protocol_options
def measure_arch(
    arch: Annotated[str, typer.Argument(help="Candidate names joined by commas, one per searchable layer.")],
    runtime: Annotated[str, typer.Option("--runtime", help="ort or tflite.")] = "ort",
    space: Annotated[
        str | None, typer.Option(help="Built-in space name or spec file (default: the LUT's space, else fbnet).")
    ] = None,
    resolution: Annotated[int | None, typer.Option("--resolution", "-r", help="Input resolution (224, 32).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Runtime threads.")] = 1,
    lut: Annotated[
        Path | None, typer.Option("--lut", exists=True, dir_okay=False, help="An hwlut LUT file to compare with.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")] = False,
    protocol: ProtocolOptions = PROTOCOL_DEFAULTS,  # the six protocol options (see protocol_options)
    xnnpack: Annotated[bool, typer.Option(help="tflite: XNNPACK delegate.")] = True,
    optimization: Annotated[str, typer.Option(help="ort: graph optimisation level.")] = "all",
) -> None:
    """Measure one whole network end to end; with --lut, compare it with the LUT's sum."""
    from profiler.network import LutSpaceMismatch, lut_prediction, measure_network
    from profiler.runtimes import RuntimeUnavailable
    from profiler.verify import lut_sentinel, sentinel_drift

    from .profile import runtime_from_options

    err = Console(stderr=True)
    if runtime not in RUNTIMES:
        raise typer.BadParameter(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}", param_hint="--runtime")
    table = None
    if lut is not None:
        table = lut_file_option(lut, "--lut")
    try:
        if table is not None and space is None:
            if resolution is not None and resolution != table.space.resolution:
                raise LutSpaceMismatch(
                    f"--resolution {resolution}: the LUT is of {table.space.name}-{table.space.resolution}"
                )
            spec = table.space
        else:
            spec = load_space(space or "fbnet", resolution=resolution)
        decoded = spec.decode(arch)
        if table is not None:
            lut_prediction(table, spec, decoded)  # fail before exporting: another space, missing entries
    except SpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--space") from None
    except ArchitectureError as exc:
        raise typer.BadParameter(str(exc), param_hint="ARCH") from None
    except LutSpaceMismatch as exc:
        err.print(f"[red]error[/]: {lut}: {exc}")
        raise typer.Exit(2) from None
    except MissingEntries as exc:
        what = "entry" if len(exc.keys) == 1 else "entries"
        err.print(f"[red]error[/]: {lut} lacks {len(exc.keys)} {what} of this network:", highlight=False)
        for key in exc.keys:
            err.print(f"  {key}", highlight=False)
        raise typer.Exit(2) from None

    if table is not None:
        _warn_settings(err, table.provenance.get("runtime") or {}, runtime, threads)
    rt = runtime_from_options(runtime, threads, xnnpack=xnnpack, optimization=optimization)
    cfg = protocol.config()
    sentinel, lut_ref = lut_sentinel(table) if table is not None else (None, None)
    if lut_ref is None:  # the LUT recorded no sentinel reference: nothing to compare, the network is its own
        sentinel = None
    try:
        with err.status(f"exporting and measuring {spec.name}-{spec.resolution} on {runtime}"):
            result = measure_network(spec, decoded, rt, cfg, lut=table, sentinel=sentinel)
    except RuntimeUnavailable as exc:
        err.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    except RuntimeError as exc:
        err.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from None

    doc = {**result.to_dict(), "lut": str(lut) if lut is not None else None, "drift": None}
    drift = sentinel_drift(result.sentinel.get("reference_us"), lut_ref)
    if drift is not None and result.predicted_us is not None:
        adjusted = result.measured_us / (1.0 + drift)
        doc["drift"] = {
            "sentinel": sentinel.key if sentinel is not None else None,
            "now_us": result.sentinel.get("reference_us"),
            "lut_us": lut_ref,
            "drift": drift,
            "adjusted_us": adjusted,
            "error_pct": 100.0 * (result.predicted_us / adjusted - 1.0),
        }
    if as_json:
        typer.echo(json.dumps(doc, indent=1))
        return
    _print(out_console(), doc)


def _warn_settings(err: Console, lut_rt: dict[str, Any], runtime: str, threads: int) -> None:
    """A LUT measured with another runtime or thread count predicts another thing: say so."""
    said = "[yellow]warning[/]: the LUT was measured with"
    if lut_rt.get("runtime") not in (None, runtime):
        err.print(f"{said} {lut_rt.get('runtime')}, this network with {runtime}", highlight=False)
    if lut_rt.get("threads") not in (None, threads):
        err.print(f"{said} {lut_rt.get('threads')} thread(s), this network with {threads}", highlight=False)


def _print(console: Console, doc: dict[str, Any]) -> None:
    stats, rt, sentinel = doc["stats"], doc["runtime"], doc["sentinel"]
    rel = stats.get("ci_rel")
    console.print(
        f"[bold]{doc['space']}-{doc['resolution']}[/] on {rt.get('runtime')} {rt.get('runtime_version')}, "
        f"{rt.get('threads')} thread(s)",
        highlight=False,
    )
    console.print(f"  arch       {doc['arch']}", highlight=False, soft_wrap=True)
    console.print(
        f"  measured   {doc['measured_us'] / 1000:9.3f} ms  (median of {stats['count']} runs, 95% CI "
        f"{'±' + format(rel, '.2%') if rel is not None else 'n/a'}, stop {stats['stop_reason']}, "
        f"{stats['passes']} passes, {sentinel['passes_redone']} redone)",
        highlight=False,
    )
    if doc["predicted_us"] is None:
        return
    console.print(
        f"  LUT sum    {doc['predicted_us'] / 1000:9.3f} ms  error {doc['error_pct']:+.1f}%  "
        f"({doc['entries']} entries of {doc['lut']})",
        highlight=False,
    )
    if doc["predicted_corrected_us"] is not None:
        console.print(
            f"  corrected  {doc['predicted_corrected_us'] / 1000:9.3f} ms  error {doc['error_corrected_pct']:+.1f}%  "
            f"(LUT sum - {doc['entries'] - 1} x overhead {doc['overhead_us']:.1f} µs)",
            highlight=False,
        )
    d = doc.get("drift")
    if d is not None:
        console.print(
            f"  drift      sentinel now {d['now_us']:.1f} µs, at the LUT's build {d['lut_us']:.1f} µs "
            f"({d['drift']:+.1%}); drift-adjusted measured {d['adjusted_us'] / 1000:.3f} ms, "
            f"LUT sum error {d['error_pct']:+.1f}%",
            highlight=False,
        )
