"""``hwlut profile``: measure every distinct entry of a space here and write a LUT file.

Local mode, no server: exports the entries, measures them with the protocol
of :mod:`profiler.protocol` (interleaved passes, a sentinel, a stopping rule
on the median's CI) and rewrites the file after every pass. Interrupted, it
leaves a valid partial file; the same command continues from it.
"""

from __future__ import annotations

import collections
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from searchspace import SpecError, load_space

from .options import (
    PROTOCOL_DEFAULTS,
    ProtocolOptions,
    protocol_options,
)

__all__ = ["profile", "runtime_from_options"]

RUNTIME_NAMES = ("ort", "tflite", "adb")


def runtime_from_options(
    name: str,
    threads: int,
    *,
    xnnpack: bool = True,
    optimization: str = "all",
    adb_serial: str | None = None,
    adb_binary: str = "/data/local/tmp/benchmark_model",
    adb_cpu_mask: str | None = None,
    adb_num_runs: int = 50,
    adb_warmup_runs: int = 10,
    cache_mode: str = "warm",
    cache_flush_bytes: int | None = None,
) -> Any:
    """The runtime named on the command line, with the options that apply to it.

    ``cache_mode="cold"`` wraps it to evict the caches before every timed run (:mod:`profiler.runtimes.coldcache`).
    """
    from profiler.runtimes import CACHE_MODES, with_cache_mode

    if cache_mode not in CACHE_MODES:
        raise typer.BadParameter(f"unknown cache mode {cache_mode!r}; known: {', '.join(CACHE_MODES)}")
    base = _base_runtime(
        name, threads, xnnpack, optimization, adb_serial, adb_binary, adb_cpu_mask, adb_num_runs, adb_warmup_runs
    )
    try:
        return with_cache_mode(base, cache_mode, flush_bytes=cache_flush_bytes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cache-mode") from None


def _base_runtime(
    name: str,
    threads: int,
    xnnpack: bool,
    optimization: str,
    adb_serial: str | None,
    adb_binary: str,
    adb_cpu_mask: str | None,
    adb_num_runs: int,
    adb_warmup_runs: int,
) -> Any:
    from profiler.runtimes import make_runtime

    if name == "ort":
        return make_runtime("ort", threads=threads, optimization=optimization)
    if name == "tflite":
        return make_runtime("tflite", threads=threads, xnnpack=xnnpack)
    if name == "adb":
        return make_runtime(
            "adb",
            threads=threads,
            xnnpack=xnnpack,
            serial=adb_serial,
            benchmark_binary=adb_binary,
            cpu_mask=adb_cpu_mask,
            num_runs=adb_num_runs,
            warmup_runs=adb_warmup_runs,
        )
    raise typer.BadParameter(f"unknown runtime {name!r}; known: {', '.join(RUNTIME_NAMES)}", param_hint="--runtime")


class _RichHooks:
    """Shows entries done, the pass, redone passes and the time left on a Rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=None, info="")
        self.redone = 0

    def start(self, total: int, done: int) -> None:
        self.progress.update(self.task, total=total, completed=done, description="overhead", info="")

    def exporting(self, key: str, index: int, count: int) -> None:
        self.progress.update(self.task, description=f"export {index + 1}/{count}", info=key)

    def measuring(self, batch: int, batches: int, size: int) -> None:
        self.progress.update(self.task, description=f"batch {batch}/{batches}", info=f"{size} entries")

    def passed(self, report: Any, done: float, total: int) -> None:
        self.redone += 0 if report.accepted else 1
        flag = " flagged" if report.flagged else ""
        info = (
            f"pass {report.index + 1}, {report.active} active, sentinel {report.drift:+.1%}{flag}, {self.redone} redone"
        )
        self.progress.update(self.task, completed=done, info=info)


@protocol_options
def profile(
    runtime: Annotated[str, typer.Option("--runtime", help="ort, tflite or adb (a phone).")] = "ort",
    space: Annotated[str, typer.Option(help="Built-in space name or a spec file.")] = "fbnet",
    resolution: Annotated[int | None, typer.Option("--resolution", "-r", help="Input resolution (224, 32).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Runtime threads.")] = 1,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="LUT file (default: lut-SPACE-RES-RT-NT.json).")
    ] = None,
    protocol: ProtocolOptions = PROTOCOL_DEFAULTS,  # the six protocol options (see protocol_options)
    sentinel_threshold: Annotated[float, typer.Option(min=1e-4, help="Sentinel drift that redoes a pass.")] = 0.05,
    normalize: Annotated[
        bool, typer.Option(help="Sentinel-relative timing: scale each pass by the sentinel's drift.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=0, help="Entries per interleaved batch (0: all).")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Only the first N entries of the space (0: all).")] = 0,
    xnnpack: Annotated[bool, typer.Option(help="tflite/adb: XNNPACK delegate.")] = True,
    optimization: Annotated[str, typer.Option(help="ort: graph optimisation level.")] = "all",
    adb_serial: Annotated[str | None, typer.Option(help="adb: device serial.")] = None,
    adb_binary: Annotated[str, typer.Option(help="adb: benchmark_model's path on the phone.")] = (
        "/data/local/tmp/benchmark_model"
    ),
    adb_cpu_mask: Annotated[str | None, typer.Option(help="adb: taskset CPU mask, e.g. f0.")] = None,
    adb_num_runs: Annotated[int, typer.Option(min=1, help="adb: --num_runs per benchmark_model call.")] = 50,
    cache_mode: Annotated[
        str | None,
        typer.Option(
            help="warm: entries run back to back; cold: caches evicted before every timed run; l2: only the L2 "
            "evicted. Default: the runtime's (l2 for tflite, warm otherwise; see the README's accuracy figures)."
        ),
    ] = None,
    cache_flush_mb: Annotated[
        float | None, typer.Option(min=0.01, help="cold/l2: MiB read to evict (default 1.5x LLC, at most 128 / 2x L2).")
    ] = None,
) -> None:
    """Profile every distinct entry of a space on this machine (or a phone) into a LUT file."""
    from profiler.local import LutMismatch, profile_space
    from profiler.runtimes import RuntimeUnavailable

    console = Console(stderr=True)
    try:
        spec = load_space(space, resolution=resolution)
    except SpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--space") from None
    from profiler.runtimes import default_cache_mode

    default_mode = default_cache_mode(runtime)
    cache_mode = cache_mode or default_mode
    rt = runtime_from_options(
        runtime,
        threads,
        xnnpack=xnnpack,
        optimization=optimization,
        adb_serial=adb_serial,
        adb_binary=adb_binary,
        adb_cpu_mask=adb_cpu_mask,
        adb_num_runs=adb_num_runs,
        cache_mode=cache_mode,
        cache_flush_bytes=int(cache_flush_mb * (1 << 20)) if cache_flush_mb else None,
    )
    suffix = "" if cache_mode == default_mode else f"-{cache_mode}"
    out = out or Path(f"lut-{spec.name}-{spec.resolution}-{runtime}-{threads}t{suffix}.json")
    cfg = protocol.config(
        sentinel_threshold=sentinel_threshold,
        normalize=normalize,
    )
    entries = spec.distinct_entries()
    if limit:
        entries = entries[:limit]
    started = time.perf_counter()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:.0f}/{task.total} entries"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    try:
        with progress:
            table = profile_space(
                spec, rt, out, cfg, entries=entries, batch_size=batch_size or None, hooks=_RichHooks(progress)
            )
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/]: the partial LUT is in {out}; run the same command to continue")
        raise typer.Exit(130) from None
    except (LutMismatch, RuntimeUnavailable) as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    _summary(console, table, out, len(entries), time.perf_counter() - started)


def _summary(console: Console, table: Any, out: Path, wanted: int, wall: float) -> None:
    entries = table.entries
    reasons = collections.Counter(s.get("stop_reason") for s in entries.values())
    rels = [s["ci_rel"] for s in entries.values() if s.get("ci_rel") is not None]
    prov = table.provenance
    sentinel = prov.get("sentinel", {})
    rt = prov.get("runtime", {})
    console.print(
        f"[bold]{out}[/]: {len(entries)}/{len(table.space.distinct_entries())} entries of "
        f"{table.space.name}-{table.space.resolution} ({wanted} selected), "
        f"{'complete' if table.complete else 'partial'}; {len(table.errors)} error(s)"
    )
    console.print(
        f"  runtime {rt.get('runtime')} {rt.get('runtime_version')}, {rt.get('threads')} thread(s), "
        f"{rt.get('cache_mode', 'warm')} caches; "
        f"overhead {table.overhead_us or float('nan'):.1f} µs; stop: "
        + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items(), key=lambda kv: str(kv[0])))
    )
    if rels:
        console.print(
            f"  median CI half-width {statistics.median(rels):.2%} (max {max(rels):.2%}); "
            f"passes {prov.get('passes', 0)}, redone {prov.get('passes_redone', 0)}, "
            f"max sentinel drift {sentinel.get('max_abs_drift', 0.0):.1%}; wall {wall:.1f} s"
        )
    for key, message in list(table.errors.items())[:5]:
        console.print(f"  [red]error[/] {key}: {message.splitlines()[0] if message else ''}")
