"""``hwlut quickstart``: export a few blocks of FBNet and time them on this CPU.

A first look that needs no server: a handful of entries of the 32x32 space,
exported to ONNX and TFLite, each timed on onnxruntime and on LiteRT with one
thread. The full measurement protocol, the server and the agent build on this.
"""

from __future__ import annotations

import statistics
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from searchspace import load_space

DEFAULT_OPS = ("k3_e1", "k3_e6", "k5_e6", "k5_e1_g2", "skip")


def quickstart(
    resolution: Annotated[int, typer.Option("--resolution", "-r", help="Input resolution (32 or 224).")] = 32,
    layer: Annotated[int, typer.Option(help="Searchable layer whose candidates are timed.")] = 5,
    runs: Annotated[int, typer.Option(min=5, help="Timed runs per entry and runtime.")] = 200,
    threads: Annotated[int, typer.Option(min=1, help="Threads per runtime.")] = 1,
) -> None:
    """Export a few FBNet blocks to ONNX and TFLite and print their latencies here."""
    from profiler.export import ArtifactCache, entry_target
    from profiler.runtimes import make_runtime

    console = Console()
    spec = load_space("fbnet", resolution=resolution)
    if not 0 <= layer < len(spec.layers):
        raise typer.BadParameter(f"the space has layers 0..{len(spec.layers) - 1}", param_hint="--layer")
    chosen = spec.layers[layer]
    entries = [chosen.entry(op) for op in DEFAULT_OPS] + [spec.fixed_entries()["stem"], spec.fixed_entries()["fc"]]
    cache = ArtifactCache()
    runtimes = [make_runtime("ort", threads=threads), make_runtime("tflite", threads=threads)]
    table = Table(
        "entry",
        *(f"{rt.name} median µs (p10–p90)" for rt in runtimes),
        title=f"FBNet {resolution}x{resolution}, layer {layer} ({chosen.cin}->{chosen.cout}, "
        f"{chosen.h}x{chosen.w}, stride {chosen.stride}), {threads} thread(s), {runs} runs",
    )
    started = time.perf_counter()
    with console.status("exporting and timing…") as status:
        for entry in entries:
            cells = []
            for rt in runtimes:
                status.update(f"{entry.key}: {rt.name}")
                artifact = cache.get(entry_target(entry), rt.format)
                model = rt.load(artifact.path, artifact.input_shape)
                for _ in range(max(10, runs // 10)):
                    model.run_once()
                samples = []
                for _ in range(runs):
                    t0 = time.perf_counter_ns()
                    model.run_once()
                    samples.append((time.perf_counter_ns() - t0) / 1000)
                model.close()
                deciles = statistics.quantiles(samples, n=10)
                cells.append(f"{statistics.median(samples):9.1f} ({deciles[0]:.1f}–{deciles[-1]:.1f})")
            table.add_row(entry.key, *cells)
    console.print(table)
    console.print(
        f"{len(entries)} entries x {len(runtimes)} runtimes in {time.perf_counter() - started:.1f} s; "
        f"artifacts cached under {cache.root}"
    )
