"""``hwlut quickstart``: export a few blocks of FBNet and time them on this CPU.

A first look that needs no server: a handful of entries of the 32x32 space,
exported to ONNX and TFLite, each measured on onnxruntime and on LiteRT with
one thread by the measurement protocol (:mod:`profiler.protocol`: warm-up,
interleaved passes with a sentinel, stop on the median's 95% CI or a time
cap). ``hwlut profile`` measures a whole space the same way.
"""

from __future__ import annotations

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
    precision: Annotated[float, typer.Option(min=1e-6, help="Target ± share of the median's 95% CI.")] = 0.01,
    time_cap: Annotated[float, typer.Option(min=1e-3, help="Measuring time cap per entry, seconds.")] = 1.0,
    threads: Annotated[int, typer.Option(min=1, help="Threads per runtime.")] = 1,
) -> None:
    """Export a few FBNet blocks to ONNX and TFLite and print their latencies here."""
    from profiler.export import ArtifactCache, entry_target
    from profiler.local import default_sentinel
    from profiler.protocol import ProtocolConfig, measure_batch
    from profiler.runtimes import make_runtime

    console = Console()
    spec = load_space("fbnet", resolution=resolution)
    if not 0 <= layer < len(spec.layers):
        raise typer.BadParameter(f"the space has layers 0..{len(spec.layers) - 1}", param_hint="--layer")
    chosen = spec.layers[layer]
    entries = [chosen.entry(op) for op in DEFAULT_OPS] + [spec.fixed_entries()["stem"], spec.fixed_entries()["fc"]]
    cache = ArtifactCache()
    config = ProtocolConfig(target_rel_ci=precision, time_cap_s=time_cap, warmup_s=0.2)
    runtimes = [make_runtime("ort", threads=threads), make_runtime("tflite", threads=threads)]
    table = Table(
        "entry",
        *(f"{rt.name} median µs (±CI, stop)" for rt in runtimes),
        title=f"FBNet {resolution}x{resolution}, layer {layer} ({chosen.cin}->{chosen.cout}, "
        f"{chosen.h}x{chosen.w}, stride {chosen.stride}), {threads} thread(s), "
        f"95% CI target ±{precision:.1%} or {time_cap:g} s",
    )
    started = time.perf_counter()
    cells: dict[str, list[str]] = {e.key: [] for e in entries}
    with console.status("exporting and timing…") as status:
        for rt in runtimes:
            loaded = []
            for entry in entries:
                status.update(f"{rt.name}: export {entry.key}")
                artifact = cache.get(entry_target(entry), rt.format)
                loaded.append((entry.key, rt.load(artifact.path, artifact.input_shape)))
            sentinel_art = cache.get(entry_target(default_sentinel(spec)), rt.format)
            sentinel = rt.load(sentinel_art.path, sentinel_art.input_shape)
            status.update(f"{rt.name}: measuring {len(loaded)} entries in interleaved passes")
            result = measure_batch(loaded, sentinel, config)
            for key, model in loaded:
                model.close()
                res = result.entries[key]
                if res.summary is None:
                    cells[key].append(f"error: {res.error}")
                else:
                    s = res.summary
                    cells[key].append(f"{s.median:9.1f} (±{s.ci_rel:.1%}, {res.stop_reason})")
            sentinel.close()
    for key, row in cells.items():
        table.add_row(key, *row)
    console.print(table)
    console.print(
        f"{len(entries)} entries x {len(runtimes)} runtimes in {time.perf_counter() - started:.1f} s; "
        f"artifacts cached under {cache.root}"
    )
