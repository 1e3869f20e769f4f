"""``hwlut export``: one entry or a whole architecture to an ONNX or TFLite file."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from searchspace import NAMED_ARCHITECTURES, ArchitectureError, EntryKeyError, SpecError, load_space, parse_key

from .options import choices


def export(
    key_or_arch: Annotated[
        str,
        typer.Argument(help="An entry key (any rendering) or an architecture 'k3_e1,skip,...'.", metavar="KEY_OR_ARCH"),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="onnx or tflite.", autocompletion=choices(("onnx", "tflite")), metavar="FORMAT"
        ),
    ] = "onnx",
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the file.")] = Path("model.onnx"),
    space: Annotated[str, typer.Option(help="Space of an architecture: built-in name or spec file.")] = "fbnet",
    resolution: Annotated[int | None, typer.Option("--resolution", "-r", help="Input resolution.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Batch size.")] = 1,
) -> None:
    """Export one LUT entry or a whole architecture (through the artifact cache).

    Example: hwlut export tbs_h56_w56_cin24_cout32_s2_k5_e6_g1 --format tflite --out blk.tflite
    """
    from profiler.export import FORMATS, ArtifactCache, entry_target, network_target

    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", param_hint="--format")
    named = key_or_arch.strip().lower().replace("_", "-") in NAMED_ARCHITECTURES.get(space, {})
    if "," in key_or_arch or named:
        try:
            target = network_target(load_space(space, resolution=resolution), key_or_arch)
        except (ArchitectureError, SpecError) as exc:
            raise typer.BadParameter(str(exc), param_hint="KEY_OR_ARCH") from None
    else:
        try:
            target = entry_target(parse_key(key_or_arch))
        except EntryKeyError as exc:
            raise typer.BadParameter(str(exc), param_hint="KEY_OR_ARCH") from None
    artifact = ArtifactCache().get(target, fmt, batch=batch)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifact.path, out)
    typer.echo(
        f"wrote {out} ({fmt}, {out.stat().st_size} bytes, input {list(artifact.input_shape)}, "
        f"sha256 {artifact.sha256[:12]})"
    )
