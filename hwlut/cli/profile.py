"""``hwlut profile``: measure every distinct entry of a space here and write a LUT file.

Local mode, no server: exports the entries, measures them with the protocol
of :mod:`profiler.protocol` (interleaved passes, a sentinel, a stopping rule
on the median's CI) and rewrites the file after every pass. Interrupted, it
leaves a valid partial file; the same command continues from it.

Before the first batch (and, shorter, before each later one) a calm gate
times the sentinel until its recent medians agree within ``--calm-threshold``,
at most ``--calm-wait`` seconds (:mod:`profiler.calm`); ``--recheck N``
afterwards re-measures the N least trustworthy entries (:mod:`profiler.recheck`),
also of a file that is already complete.
"""

from __future__ import annotations

import collections
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Column
from rich.text import Text

from searchspace import SpecError, load_space
from searchspace.jobs import CACHE_MODES, OPTIMIZATION_LEVELS, RUNTIME_ALIASES, canonical_runtime

from .console import live_progress
from .errors import fail
from .options import (
    PROTOCOL_DEFAULTS,
    CacheModeOpt,
    CalmWaitOpt,
    ProtocolOptions,
    RuntimeOpt,
    choices,
    protocol_options,
)
from .recheck_view import print_recheck

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
    """Shows the phase, finished entries of the selection, the time left and the pass on a Rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=None, info="")
        self.redone = 0
        self.finished = 0
        self.export_task: Any = None

    def start(self, total: int, done: int) -> None:
        self.finished = done
        self.progress.update(self.task, total=total, completed=done, description="overhead", info="")

    def exporting(self, key: str, index: int, count: int) -> None:
        self._end_export()
        self.progress.update(self.task, description=f"export {index + 1}/{count}", info=key)

    def exported(self, finished: int, count: int) -> None:
        """The export line counts finished artifacts: ``export ━━━  5/12 artifacts``; gone when all are in."""
        if self.export_task is None:
            self.progress.update(self.task, description="waiting")
            self.export_task = self.progress.add_task("export", total=count, info="", unit="artifacts")
        self.progress.update(self.export_task, completed=finished, total=count)
        if finished >= count:
            self._end_export()

    def _end_export(self) -> None:
        if self.export_task is not None:  # done, or a stand-in cache that exports nothing
            self.progress.remove_task(self.export_task)
            self.export_task = None

    def measuring(self, batch: int, batches: int, size: int) -> None:
        self._end_export()
        self.progress.update(self.task, description=f"batch {batch}/{batches}", info=f"{size} entries")

    def calming(self, where: str, max_wait_s: float) -> None:
        self.progress.update(self.task, description="calm gate", info=f"before {where}, at most {max_wait_s:.0f} s")

    def passed(self, report: Any, done: float, total: int) -> None:
        self.redone += 0 if report.accepted else 1
        self.finished += len(report.finished)
        flag = " flagged" if report.flagged else ""
        redone = f", {self.redone} redone" if self.redone else ""
        info = f"pass {report.index + 1}, {report.active} active, drift {report.drift:+.1%}{flag}{redone}"
        self.progress.update(self.task, completed=min(self.finished, total), info=info)


class _EntriesColumn(ProgressColumn):
    """``12/112 entries`` once the total is known (nothing before: no ``0/None``); a task's ``unit`` field
    names what it counts (``5/12 artifacts``)."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{task.completed:.0f}/{task.total:.0f} {task.fields.get('unit', 'entries')}")


def _progress(console: Console) -> Progress:
    """The profile's bar, readable at 80 columns: ``batch 1/2 ━━━━━  12/112 entries  ETA 0:03:10  pass 3, …``."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=16),
        _EntriesColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
        console=console,
        transient=False,
    )


#: Settings of a LUT file, the most telling first, and the option of ``hwlut profile`` that sets each.
_SETTING_OPTIONS = {
    "runtime.runtime": "--runtime",
    "runtime.threads": "--threads",
    "runtime.cache_mode": "--cache-mode",
    "cache_mode": "--cache-mode",
    "runtime.optimization": "--optimization",
    "runtime.xnnpack": "--xnnpack/--no-xnnpack",
    "runtime.cache_flush_bytes": "--cache-flush-mb",
}


def mismatch_message(text: str, out: Path) -> str:
    """A :class:`~profiler.local.LutMismatch` as one line: the setting that matters first, then what to do."""
    head, _, rest = text.partition("; ")
    todo = f"give another --out, or add --restart to measure {out} over (the old file is kept as {out}.bak)"
    diffs = [d for d in rest.split("; ") if ": " in d and " != " in d] if "measured differently" in head else []
    if not diffs:
        return f"{text}; {todo}"
    order = list(_SETTING_OPTIONS)
    diffs.sort(key=lambda d: order.index(d.split(": ", 1)[0]) if d.split(": ", 1)[0] in order else len(order))
    path, values = diffs[0].split(": ", 1)
    old, _, new = values.partition(" != ")
    option = _SETTING_OPTIONS.get(path)
    message = f"{out} was measured with {path} {old}; this command asks for {new}. "
    message += f"To continue it, drop or change {option}; or {todo}" if option else todo[0].upper() + todo[1:]
    others = [d.split(": ", 1)[0] for d in diffs[1:]]
    if others:
        message += f" ({len(others)} more setting(s) differ: {', '.join(others[:4])}{' …' if len(others) > 4 else ''})"
    return message


@protocol_options
def profile(
    runtime: RuntimeOpt = "ort",
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
    optimization: Annotated[
        str,
        typer.Option(
            help=f"ort: graph optimisation level: {', '.join(OPTIMIZATION_LEVELS)}.",
            autocompletion=choices(OPTIMIZATION_LEVELS),
            metavar="LEVEL",
        ),
    ] = "all",
    adb_serial: Annotated[str | None, typer.Option(help="adb: device serial.")] = None,
    adb_binary: Annotated[str, typer.Option(help="adb: benchmark_model's path on the phone.")] = (
        "/data/local/tmp/benchmark_model"
    ),
    adb_cpu_mask: Annotated[str | None, typer.Option(help="adb: taskset CPU mask, e.g. f0.")] = None,
    adb_num_runs: Annotated[int, typer.Option(min=1, help="adb: --num_runs per benchmark_model call.")] = 50,
    cache_mode: CacheModeOpt = None,
    cache_flush_mb: Annotated[
        float | None, typer.Option(min=0.01, help="cold/l2: MiB read to evict (default 1.5x LLC, at most 128 / 2x L2).")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Measure --out over when it holds other settings (kept as OUT.bak).")
    ] = False,
    calm_wait: CalmWaitOpt = 20.0,
    calm_threshold: Annotated[
        float, typer.Option(min=1e-4, help="Calm gate: spread of the sentinel's recent medians that counts as steady.")
    ] = 0.05,
    recheck: Annotated[
        int, typer.Option(min=0, help="Afterwards re-measure the N entries with the widest CI or drift (0: off).")
    ] = 0,
    recheck_time: Annotated[
        float, typer.Option(min=0.0, help="Recheck: seconds of measuring at most (0: the protocol's time cap each).")
    ] = 0.0,
) -> None:
    """Profile every distinct entry of a space on this machine (or a phone) into a LUT file.

    Interrupted (Ctrl-C), it leaves a valid partial file; the same command continues it.

    Example: hwlut profile --runtime tflite -r 224 --threads 1
    """
    console = Console(stderr=True)
    name = canonical_runtime(runtime)
    if name is None:
        known = ", ".join(RUNTIME_ALIASES)
        raise typer.BadParameter(f"unknown runtime {runtime!r}; known: {known}", param_hint="--runtime")
    runtime = name
    if optimization not in OPTIMIZATION_LEVELS:
        known = ", ".join(OPTIMIZATION_LEVELS)
        raise typer.BadParameter(f"unknown level {optimization!r}; known: {known}", param_hint="--optimization")
    if cache_mode is not None and cache_mode not in CACHE_MODES:
        known = ", ".join(CACHE_MODES)
        raise typer.BadParameter(f"unknown cache mode {cache_mode!r}; known: {known}", param_hint="--cache-mode")
    from profiler.calm import CalmSettings

    calm = CalmSettings.from_wait(calm_wait, calm_threshold)
    try:
        spec = load_space(space, resolution=resolution)
    except SpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--space") from None
    from profiler.local import LutMismatch, profile_space
    from profiler.recheck import recheck_entries
    from profiler.runtimes import RuntimeUnavailable, default_cache_mode

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
    if restart and out.exists():
        backup = out.with_name(out.name + ".bak")
        out.replace(backup)
        console.print(f"--restart: {out} moved to {backup}; measuring from the start", highlight=False)
    started = time.perf_counter()
    progress = _progress(console)
    existed = out.exists()
    try:
        with live_progress(progress):
            hooks = _RichHooks(progress)
            table = profile_space(
                spec, rt, out, cfg, entries=entries, batch_size=batch_size or None, hooks=hooks, calm=calm
            )
            if recheck and table.entries:
                hooks.calming("the recheck", calm_wait)
                progress.update(hooks.task, description="recheck", info=f"{min(recheck, len(table.entries))} entries")
                checked = recheck_entries(table, out, rt, recheck, time_s=recheck_time or None, calm=calm)
    except KeyboardInterrupt:
        if _drop_if_empty(out, existed):
            console.print("[yellow]interrupted[/] before any entry was measured; no file left", highlight=False)
        else:
            console.print(f"[yellow]interrupted[/]: the partial LUT is in {out}; run the same command to continue")
        raise typer.Exit(130) from None
    except LutMismatch as exc:
        fail(mismatch_message(str(exc), out))
    except BaseException as exc:
        _drop_if_empty(out, existed)  # a failed start leaves no 0-entry file to block the right command
        if isinstance(exc, RuntimeUnavailable):
            fail(str(exc))
        raise
    _summary(console, table, out, len(entries), time.perf_counter() - started)
    if recheck and table.entries:
        print_recheck(console, checked)


def _drop_if_empty(out: Path, existed: bool) -> bool:
    """Remove ``out`` when this run made it and measured nothing into it; True when removed."""
    from searchspace import LatencyTable, LutFileError

    if existed or not out.exists():
        return False
    try:
        table = LatencyTable.load(out)
    except (LutFileError, OSError, ValueError):
        return False
    if table.entries or table.errors:
        return False
    out.unlink()
    return True


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
    from profiler.calm import calm_line

    calm = calm_line(prov)
    if calm:
        console.print(f"  {calm}", highlight=False)
    for key, message in list(table.errors.items())[:5]:
        console.print(f"  [red]error[/] {key}: {message.splitlines()[0] if message else ''}")
