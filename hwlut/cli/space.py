"""``hwlut space``: show a search space, its layers and its distinct LUT entries."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from searchspace import SpecError, load_space
from searchspace.builtin import BUILTIN_SPACES, SPACE_SOURCES

from .console import out_console

app = typer.Typer(help="Search spaces: layers, candidates, LUT entries.", no_args_is_help=True)

SpaceArg = Annotated[
    str, typer.Argument(help=f"A built-in space ({', '.join(BUILTIN_SPACES)}) or a spec file (YAML/JSON).")
]
ResolutionOpt = Annotated[
    int | None, typer.Option("--resolution", "-r", help="Input resolution, e.g. 224 or 32 (FBNet's CIFAR variant).")
]


@app.command("show")
def show(
    space: SpaceArg = "fbnet",
    resolution: ResolutionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The layers with their shapes, the candidates, and every distinct LUT entry.

    Example: hwlut space show -r 32
    """
    try:
        spec = load_space(space, resolution=resolution)
    except SpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="SPACE") from None
    if as_json:
        doc = {
            "spec": spec.to_dict(),
            "spec_hash": spec.spec_hash,
            "source": SPACE_SOURCES.get(space),
            "num_layers": len(spec.layers),
            "num_architectures": spec.num_architectures,
            "layers": [
                {
                    "index": layer.index,
                    "stage": layer.stage,
                    "cin": layer.cin,
                    "cout": layer.cout,
                    "h": layer.h,
                    "w": layer.w,
                    "stride": layer.stride,
                    "candidates": list(layer.candidate_names),
                    "entries": [layer.entry(c).key for c in layer.candidates],
                }
                for layer in spec.layers
            ],
            "entries": [
                {
                    "key": e.key,
                    "hwnasbench": e.hwnasbench_key(),
                    "proxyless": e.proxyless_key(),
                    **e.fields(),
                }
                for e in spec.distinct_entries()
            ],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    console = out_console()
    console.print(
        f"[bold]{spec.name}[/] at {spec.resolution}x{spec.resolution}: {len(spec.layers)} searchable layers, "
        f"{spec.num_architectures:.3e} architectures ({spec.num_architectures}), "
        f"{len(spec.block_entries())} block entries, {len(spec.distinct_entries())} entries in all"
    )
    if space in SPACE_SOURCES:
        console.print(f"source: {SPACE_SOURCES[space]}", highlight=False)
    console.print(f"block: {spec.block}; candidates: " + ", ".join(spec.candidates))
    layers = Table("layer", "stage", "cin", "cout", "input", "stride", "candidates", title="searchable layers")
    for layer in spec.layers:
        layers.add_row(
            str(layer.index),
            str(layer.stage),
            str(layer.cin),
            str(layer.cout),
            f"{layer.h}x{layer.w}",
            str(layer.stride),
            str(len(layer.candidates)),
        )
    console.print(layers)
    entries = Table("#", "canonical key", "ProxylessNAS / OFA key", title="distinct LUT entries")
    for i, entry in enumerate(spec.distinct_entries()):
        entries.add_row(str(i), entry.key, entry.proxyless_key())
    console.print(entries)
