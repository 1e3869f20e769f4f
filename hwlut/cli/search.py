"""``hwlut search``: FBNet's differentiable architecture search against one or more device LUTs.

One search per LUT (``--lut A --lut B`` or ``--server URL --device A --device B``);
with two or more, the searched architectures are printed side by side with
each one's latency on every device. torch and the searcher are imported inside
the command, so ``hwlut --help`` stays fast.

Under ``torchrun --nproc-per-node N`` the same command runs one search over N
processes (:mod:`searcher.distributed`); rank 0 alone prints and writes.
Before training, one timed weight step and one θ step give the estimated
time of the whole search.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .console import out_console
from .errors import EXIT_INTERRUPTED

PROXY_CHOICES = ("synthetic", "digits")


def _label_dir(label: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "lut"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _fmt_ms(us: float | None) -> str:
    return "—" if us is None else f"{us / 1000:.4f} ms"


def _fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _say_estimate(console: Console, searcher: Any) -> None:
    """Time one weight step and one θ step, and print what the whole search will take."""
    from searcher.estimate import estimate_seconds, time_steps

    weight_s, arch_s = time_steps(searcher)
    w_steps, a_steps = searcher.steps_per_epoch()
    left = searcher.config.epochs - searcher.epoch
    console.print(
        f"  estimated {_fmt_duration(estimate_seconds(searcher, weight_s, arch_s))}: {left} epoch(s) x "
        f"({w_steps} weight steps x {weight_s:.2f} s + {a_steps} θ steps x {arch_s:.2f} s), "
        "timed on one step each before starting",
        highlight=False,
    )


def _run_with_progress(
    console: Console, searcher: Any, out_dir: Path, *, resume: bool, pause_after: int | None
) -> dict[str, Any]:
    """Run one search under Rich progress bars (epochs, steps), printing a line per epoch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    epochs = searcher.config.epochs
    w_steps, a_steps = searcher.steps_per_epoch()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        ep_task = progress.add_task("epochs", total=epochs, completed=searcher.epoch)
        step_task = progress.add_task("steps", total=w_steps + a_steps)

        def on_step(phase: str, i: int, total: int) -> None:
            progress.update(step_task, completed=i if phase == "weights" else w_steps + i, description=phase)

        def on_epoch(record: dict[str, Any]) -> None:
            mem = record["peak_memory_mb"]
            progress.update(ep_task, completed=record["epoch"])
            progress.reset(step_task)
            console.print(
                f"  epoch {record['epoch']:3d}/{epochs}  τ {record['tau']:.3f}  "
                f"loss {record['train_loss']:.3f} (w) {record['arch_loss']:.3f} (θ)  "
                f"train acc {record['train_acc']:.3f}  θ-split acc {record['arch_acc']:.3f}  "
                + ("" if record["val_acc"] is None else f"val acc (argmax) {record['val_acc']:.3f}  ")
                + f"E[LAT] {_fmt_ms(record['expected_latency_us'])}  argmax {_fmt_ms(record['argmax_latency_us'])}  "
                + f"peak mem/step {mem['weights']:.0f} MB (w) {mem['arch']:.0f} MB (θ)"
                + ("" if record["theta_trained"] else "  (warm-up)"),
                highlight=False,
            )

        try:
            return searcher.run(
                out_dir,
                resume=resume,
                pause_after=pause_after,
                on_start=lambda: _say_estimate(console, searcher),
                on_step=on_step,
                on_epoch=on_epoch,
            )
        except KeyboardInterrupt:
            raise SearchStopped(searcher.epoch, epochs, out_dir) from None


class SearchStopped(Exception):
    """Ctrl-C during a search: the epochs its checkpoint in ``out_dir`` holds."""

    def __init__(self, done: int, epochs: int, out_dir: Path) -> None:
        super().__init__(done, epochs, out_dir)
        self.done, self.epochs, self.out_dir = done, epochs, out_dir

    def message(self) -> str:
        """Where the search stopped and the command that continues it."""
        args = sys.argv[1:] if sys.argv[1:2] == ["search"] else None
        command = "the same command with --resume"
        if args is not None:
            command = "hwlut " + shlex.join([*args, *([] if "--resume" in args else ["--resume"])])
        if self.done == 0:
            return f"interrupted in epoch 1 of {self.epochs}, before any checkpoint: {command} starts it over"
        return (
            f"interrupted in epoch {self.done + 1} of {self.epochs} (checkpoint of epoch {self.done} in "
            f"{self.out_dir}): resume with {command}"
        )


def search(
    lut: Annotated[list[Path] | None, typer.Option("--lut", help="hwlut JSON LUT file (repeat for several).")] = None,
    server: Annotated[str | None, typer.Option(help="hwlut server URL, to fetch LUTs by device.")] = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", help="Device name on --server (repeat for several).")
    ] = None,
    job: Annotated[str, typer.Option(help="Profiling job on --server: an id or 'latest'.")] = "latest",
    token: Annotated[
        str | None, typer.Option(envvar="HWLUT_TOKEN", help="Bearer token for --server, if it needs one.")
    ] = None,
    space: Annotated[
        str | None, typer.Option(help="Space to search (built-in name or spec file); default: the LUT's own.")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Image folder: DIR/<class>/<img> or DIR/train/<class>/...")] = None,
    proxy: Annotated[
        str | None, typer.Option(help=f"Built-in proxy task instead of --data: {', '.join(PROXY_CHOICES)}.")
    ] = None,
    proxy_samples: Annotated[int | None, typer.Option(min=20, help="Samples of the proxy task.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (FBNet: 90).")] = 90,
    warmup: Annotated[
        int | None, typer.Option(min=0, help="Epochs with θ frozen (default: epochs/9 rounded, FBNet's 10 of 90).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="α of CE·α·log(LAT)^β.")] = 0.2,
    beta: Annotated[float, typer.Option(min=0.0, help="β of CE·α·log(LAT)^β.")] = 0.6,
    target_latency: Annotated[
        float | None, typer.Option(help="Target (ms): use CE·α·(LAT/target)^β instead of the log form.")
    ] = None,
    latency_unit: Annotated[
        str, typer.Option(help="Unit of LAT in ms, or 'auto' (1 ms unless the space is faster than e ms).")
    ] = "auto",
    batch_size: Annotated[int, typer.Option(min=2, help="Global batch of a step (over all torchrun processes).")] = 64,
    width_mult: Annotated[
        float, typer.Option(help="Train a narrower super net (the LUT still prices full width).")
    ] = 1.0,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Cap on steps per phase and epoch.")] = None,
    samples: Annotated[int, typer.Option(min=0, help="Architectures sampled from P_θ for the result.")] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    device_type: Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda, cuda:N.")] = "auto",
    amp: Annotated[bool, typer.Option(help="Mixed precision on CUDA.")] = True,
    workers: Annotated[int, typer.Option(min=0, help="Data-loader workers for --data.")] = 0,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch CPU threads (default: torch's; 1 on a shared machine).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder (one sub-folder per LUT when several).")] = Path(
        "search-out"
    ),
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")] = False,
    pause_after: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many epochs in all, leaving a checkpoint for --resume.")
    ] = None,
    micro_batches: Annotated[
        int, typer.Option(min=1, help="Split each process's batch into N micro-batches (less memory, same step).")
    ] = 1,
    top_k: Annotated[
        int | None, typer.Option(min=1, help="Train only the k largest of each layer's Gumbel sample per step.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Under torchrun: auto (nccl on CUDA, else gloo), gloo or nccl.")
    ] = "auto",
) -> None:
    """Search FBNet-style (CE·α·log(LAT)^β) against device LUTs; writes search_result.json and PNGs."""
    from searcher import (
        LutSource,
        LutSourceError,
        SearchConfig,
        SearchInterrupted,
        fetch_server_lut,
        load_image_folder,
        load_lut_file,
        proxy_task,
    )
    from searcher.distributed import BACKENDS, process_group
    from searchspace import BUILTIN_SPACES, LatencyTable, load_space

    if backend not in BACKENDS:
        raise typer.BadParameter(f"one of {', '.join(BACKENDS)}", param_hint="--backend")

    console = out_console()
    err = Console(stderr=True)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    # -- LUTs ----------------------------------------------------------------------
    if lut and (server or device):
        raise typer.BadParameter("give --lut files or --server with --device, not both", param_hint="--lut")
    if not lut and not (server and device):
        raise typer.BadParameter("name a LUT: --lut FILE, or --server URL --device NAME", param_hint="--lut")
    sources: list[tuple[LatencyTable, LutSource]] = []
    try:
        if lut:
            named = load_space(space) if space else None  # a YAML table (ProxylessNAS / OFA) needs its space
            sources = [load_lut_file(path, named) for path in lut]
        else:
            assert server is not None and device is not None
            sources = [fetch_server_lut(server, name, job, token=token) for name in device]
    except (LutSourceError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    # a built-in space takes the LUT's resolution; a spec file keeps its own
    builtin_res = sources[0][0].space.resolution if space in BUILTIN_SPACES else None
    spec = load_space(space, resolution=builtin_res) if space else None
    failed = False
    for table, source in sources:
        wanted = spec or table.space
        missing = table.missing(wanted.distinct_entries())
        if missing:
            failed = True
            err.print(
                f"[red]error:[/red] LUT {source.label} ({source.location}) lacks {len(missing)} of "
                f"{len(wanted.distinct_entries())} entries of space {wanted.name!r} @ {wanted.resolution}:"
            )
            for key in missing:
                err.print(f"  {key}", highlight=False)
    if failed:
        err.print("no training started: complete the LUT(s) (profile the missing entries) or pick another --space")
        raise typer.Exit(2)

    # -- data ------------------------------------------------------------------------
    val_set = None
    if (data is None) == (proxy is None):
        raise typer.BadParameter("give exactly one of --data DIR and --proxy NAME", param_hint="--data")
    resolution = (spec or sources[0][0].space).resolution
    if proxy is not None:
        if proxy not in PROXY_CHOICES:
            raise typer.BadParameter(f"known proxy tasks: {', '.join(PROXY_CHOICES)}", param_hint="--proxy")
        train_set = proxy_task(proxy, resolution=resolution, samples=proxy_samples, seed=seed)
        data_desc = f"proxy:{proxy} ({len(train_set)} samples, {len(train_set.classes)} classes)"
    else:
        assert data is not None
        try:
            train_set, val_set = load_image_folder(data, resolution)
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--data") from None
        data_desc = f"{data} ({len(train_set)} images, {len(train_set.classes)} classes"
        data_desc += f", val {len(val_set)})" if val_set is not None else ")"

    try:
        unit = None if latency_unit == "auto" else float(latency_unit)
    except ValueError:
        raise typer.BadParameter("a number of ms or 'auto'", param_hint="--latency-unit") from None
    try:
        config = SearchConfig(
            epochs=epochs,
            warmup_epochs=round(epochs / 9) if warmup is None else warmup,
            batch_size=batch_size,
            alpha=alpha,
            beta=beta,
            target_ms=target_latency,
            latency_unit_ms=unit,
            width_mult=width_mult,
            max_steps=max_steps,
            samples=samples,
            seed=seed,
            device_type=device_type,
            amp=amp,
            workers=workers,
            micro_batches=micro_batches,
            top_k=top_k,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--micro-batches") from None
    try:
        with process_group(backend, device_type) as ctx:
            if not ctx.is_main:
                console.quiet = True
            _search_all(
                console, err, sources, spec, train_set, val_set, data_desc, config, ctx, out, resume, pause_after
            )
    except SearchInterrupted as exc:
        console.print(f"{exc}; continue with the same command and --resume")
    except SearchStopped as exc:
        err.print(exc.message(), highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ValueError as exc:  # a process group that could not form, a batch the processes cannot share
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _search_all(
    console: Console,
    err: Console,
    sources: list[Any],
    spec: Any,
    train_set: Any,
    val_set: Any,
    data_desc: str,
    config: Any,
    ctx: Any,
    out: Path,
    resume: bool,
    pause_after: int | None,
) -> None:
    """One search per LUT (all ranks take part), then the side-by-side table (rank 0)."""
    from searcher import Searcher, cross_latencies, write_plots
    from searchspace import LatencyTable, MissingEntries

    # -- one search per LUT ------------------------------------------------------------
    results: dict[str, dict[str, Any]] = {}
    tables: dict[str, LatencyTable] = {}
    taken: set[str] = set()
    for table, source in sources:
        label = _label_dir(source.label, taken)
        out_dir = out if len(sources) == 1 else out / label
        try:
            searcher = Searcher(table, source, train_set, config, space=spec, val_set=val_set, dist=ctx)
        except (ValueError, MissingEntries) as exc:
            err.print(f"[red]error:[/red] {source.label}: {exc}")
            raise typer.Exit(2) from None
        console.print(
            f"[bold]{label}[/bold]: LUT {source.location} (device {source.device}, job {source.job}, "
            f"sha256 {source.content_hash[:12]}), space {searcher.space.name} @ {searcher.space.resolution}, "
            f"{data_desc}, on {searcher.device}{' ' + str(searcher.amp_dtype) if searcher.amp_dtype else ''}; "
            f"LAT unit {searcher.unit_ms:.4g} ms"
            + (f"; {ctx.world_size} processes ({ctx.backend})" if ctx.active else "")
        )
        try:
            result = _run_with_progress(console, searcher, out_dir, resume=resume, pause_after=pause_after)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        if not ctx.is_main:
            continue
        pngs = write_plots(result, out_dir)
        best = result["argmax"]
        console.print(
            f"  argmax {best['arch']}\n  LUT latency {_fmt_ms(best['latency_us'])}"
            + (
                f" (calibrated {_fmt_ms(best['calibrated_latency_us'])})"
                if best["calibrated_latency_us"] is not None
                else ""
            )
            + f", {best['flops'] / 1e6:.1f} MFLOPs, {best['params'] / 1e6:.3f} M params",
            highlight=False,
        )
        aim = result.get("target")
        if aim:
            predicted = aim["calibrated_latency_us"] or aim["latency_us"]
            console.print(
                f"  target {aim['arch']}\n  predicted {_fmt_ms(predicted)}, {aim['predicted_error_pct']:+.1f}% off "
                f"the target {_fmt_ms(aim['target_us'])} (the likeliest architecture within ±{aim['window_pct']:g}%)"
                f"; hwlut verify measures it",
                highlight=False,
            )
        console.print(f"  wrote {out_dir / 'search_result.json'}, {', '.join(str(p) for p in pngs)}")
        results[label] = result
        tables[label] = table

    if len(results) > 1 and ctx.is_main:
        archs = {label: r["argmax"]["arch"] for label, r in results.items()}
        cross = cross_latencies(archs, tables)
        grid = Table(title="searched architectures, each timed on every device's LUT", show_lines=True)
        grid.add_column("searched on")
        grid.add_column("architecture", overflow="fold")
        for label in tables:
            grid.add_column(f"on {label}", justify="right")
        for label, arch in archs.items():
            cells = []
            for other in tables:
                value = cross[label][other]
                best = min((cross[a][other] for a in archs if cross[a][other] is not None), default=None)
                text = _fmt_ms(value)
                cells.append(f"[bold]{text}[/bold]" if value is not None and value == best else text)
            grid.add_row(label, arch, *cells)
        console.print(grid)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.json").write_text(
            json.dumps({"architectures": archs, "latency_us": cross}, indent=1) + os.linesep
        )
        console.print(f"wrote {out / 'comparison.json'}")
