"""``hwlut lut fit`` (a LUT from whole-network latencies) and ``hwlut lut fewshot`` (a new device from K measurements).

``hwlut lut fit DATA --device NAME --out LUT.json`` fits a complete LUT to a
device's (architecture, latency) pairs (:mod:`searchspace.fit`) and prints the
in-sample and cross-validated figures. ``hwlut lut fewshot choose`` picks the
K networks or entries to measure on a new device (active selection);
``hwlut lut fewshot predict`` turns those K measurements and the known
devices' LUTs into the new device's predicted LUT (:mod:`searchspace.fewshot`).
The LUT files these write import with ``hwlut lut import FILE --device NAME``.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["fewshot_app", "fit", "job_fewshot"]

fewshot_app = typer.Typer(
    help="Few-shot LUTs: choose what to measure on a new device, predict its LUT from known devices' LUTs.",
    no_args_is_help=True,
)
SpaceOpt = Annotated[str, typer.Option("--space", help="Built-in space name or spec file.")]
ResolutionOpt = Annotated[int, typer.Option("--resolution", "-r", help="Input resolution.")]
BasisOpt = Annotated[
    list[Path], typer.Option("--basis", exists=True, dir_okay=False, help="A known device's LUT file (repeat).")
]
ModeOpt = Annotated[str, typer.Option("--mode", help="networks (K whole networks) or entries (K LUT entries).")]
RidgeOpt = Annotated[float, typer.Option("--ridge", help="Ridge weight (scale-free).")]


def _space(space: str, resolution: int) -> Any:
    from searchspace import SpecError, load_space

    try:
        return load_space(space, resolution=resolution)
    except SpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--space") from None


def fit(
    data: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="HELP JSON file or CSV (arch, latency_ms|latency_us).")
    ],
    out: Annotated[Path, typer.Option("--out", help="LUT file to write.")],
    device: Annotated[
        str | None, typer.Option("--device", help="Device of a multi-device JSON file; the LUT's device name.")
    ] = None,
    space: SpaceOpt = "fbnet",
    resolution: ResolutionOpt = 32,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds (0: none).")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the cross-validation split.")] = 0,
    ridge: RidgeOpt = 1e-8,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fit report as JSON.")] = False,
) -> None:
    """Fit a complete LUT to whole-network latencies of one device (non-negative least squares, gauge rule stated)."""
    from searchspace.fit import FitError, fit_table, read_networks

    spec = _space(space, resolution)
    try:
        data_set = read_networks(data, device)
        table, report = fit_table(
            spec,
            data_set,
            ridge=ridge,
            folds=folds or len(data_set.archs) + 1,
            seed=seed,
            device={"name": device or data.stem, "runtime": "fitted from whole networks"},
        )
    except FitError as exc:
        raise typer.BadParameter(str(exc), param_hint="DATA") from None
    table.save(out)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    typer.echo(f"{out}: {len(table.entries)} entries {table.provenance['method']} ({report['source']})")
    typer.echo(f"gauge: {report['gauge']}")
    for name in ("in_sample", "cross_validated"):
        fig = report.get(name)
        if fig:
            typer.echo(
                f"{name.replace('_', '-')}: MAPE {fig['mape']:.3f}%, within ±5% {100 * fig['within_5']:.1f}%, "
                f"Spearman {fig['spearman']:.4f} over {fig['n']} networks"
            )


def _basis(space: Any, files: list[Path]) -> Any:
    from searchspace import LatencyTable, LutFileError
    from searchspace.fewshot_lut import basis_from_tables

    if not files:
        raise typer.BadParameter("give at least one known device's LUT", param_hint="--basis")
    try:
        tables = {f.stem: LatencyTable.load(f) for f in files}
        return basis_from_tables(space, tables)
    except (LutFileError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--basis") from None


@fewshot_app.command("choose")
def choose_cmd(
    basis: BasisOpt,
    k: Annotated[int, typer.Option("--k", help="How many items to measure.")],
    out: Annotated[Path, typer.Option("--out", help="CSV of the chosen items (arch or key column) to measure.")],
    mode: ModeOpt = "networks",
    pool: Annotated[int, typer.Option("--pool", help="Random candidate networks to choose from.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the candidate pool.")] = 0,
    space: SpaceOpt = "fbnet",
    resolution: ResolutionOpt = 32,
) -> None:
    """Choose the K networks or entries whose measurement tells most about a new device (active selection)."""
    from searchspace.fewshot import choose

    spec = _space(space, resolution)
    model_basis = _basis(spec, basis)
    if mode == "networks":
        rng = random.Random(seed)
        archs = [spec.sample(rng).encode() for _ in range(pool)]
        picked = [archs[i] for i in choose(model_basis, mode, k, pool=model_basis.design.matrix(archs))]
        column = "arch"
    elif mode == "entries":
        keys = model_basis.design.keys
        picked = [keys[i] for i in choose(model_basis, mode, k)]
        column = "key"
    else:
        raise typer.BadParameter("expected networks or entries", param_hint="--mode")
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([column])
        writer.writerows([p] for p in picked)
    typer.echo(f"{out}: {len(picked)} {mode} to measure (then: hwlut lut fewshot predict --measured {out} ...)")


def _measured(path: Path, mode: str) -> dict[str, float]:
    from searchspace.fit import FitError, NetworkData

    column = "arch" if mode == "networks" else "key"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0]) if rows else []
    unit = next((c for c in ("latency_us", "latency_ms") if c in fields), None)
    if column not in fields or unit is None:
        raise typer.BadParameter(
            f"the CSV needs {column!r} and 'latency_ms' or 'latency_us', got {fields}", param_hint="--measured"
        )
    try:
        data = NetworkData.checked([r[column] for r in rows], [r[unit] for r in rows], str(path))
    except FitError as exc:
        raise typer.BadParameter(str(exc), param_hint="--measured") from None
    scale = 1000.0 if unit == "latency_ms" else 1.0
    return {a: float(v) * scale for a, v in zip(data.archs, data.latency_us, strict=True)}


@fewshot_app.command("predict")
def predict_cmd(
    basis: BasisOpt,
    measured: Annotated[
        Path, typer.Option("--measured", exists=True, dir_okay=False, help="CSV: arch|key, latency_ms|latency_us.")
    ],
    out: Annotated[Path, typer.Option("--out", help="LUT file to write.")],
    device: Annotated[str, typer.Option("--device", help="The new device's name.")] = "new-device",
    mode: ModeOpt = "networks",
    ridge: RidgeOpt = 1e-4,
    space: SpaceOpt = "fbnet",
    resolution: ResolutionOpt = 32,
) -> None:
    """Predict a new device's whole LUT from known devices' LUTs and K measurements on it."""
    from searchspace.fewshot_lut import fewshot_table

    spec = _space(space, resolution)
    model_basis = _basis(spec, basis)
    try:
        table, _model = fewshot_table(
            model_basis, mode, _measured(measured, mode), ridge=ridge, device={"name": device, "runtime": "few-shot"}
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--measured") from None
    table.save(out)
    record = table.provenance["fewshot"]
    typer.echo(f"{out}: {len(table.entries)} entries, {table.provenance['method']}")
    typer.echo("weights: " + ", ".join(f"{n} {w:.3g}" for n, w in record["weights"].items()))
    held = record.get("held_out")
    if held:
        typer.echo(f"held out (leave-one-out): MAPE {held['mape']:.2f}%, Spearman {held['spearman']}")


def job_fewshot(
    device: Annotated[str, typer.Option("--device", help="The new device's name.")],
    k: Annotated[int, typer.Option("--k", min=1, help="Entries the agents measure; the server predicts the rest.")],
    basis: Annotated[
        list[str] | None, typer.Option("--basis", help="A known device to predict from (repeat; default: all).")
    ] = None,
    server: Annotated[
        str, typer.Option("--server", envvar="HWLUT_SERVER", help="Server URL.")
    ] = "http://127.0.0.1:8000",
    resolution: Annotated[int | None, typer.Option("--resolution", "-r")] = None,
    runtime: Annotated[str, typer.Option(help="ort (onnxruntime), tflite (LiteRT) or adb.")] = "ort",
    threads: Annotated[int, typer.Option(min=1, help="Runtime threads.")] = 1,
    time_cap: Annotated[float | None, typer.Option(help="Measuring time cap per entry, seconds.")] = None,
    token: Annotated[str | None, typer.Option(envvar="HWLUT_TOKEN", help="Admin or device token.")] = None,
) -> None:
    """A few-shot job: the server chooses K entries (active selection), the agents measure them; prints it as JSON.

    When they are measured, the server stores the predicted LUT as the
    device's latest (entries marked measured or predicted).
    """
    from lutclient import HwlutClient, HwlutError
    from searchspace import JobSettings
    from searchspace.jobs import default_cache_mode

    protocol = {"time_cap_s": time_cap} if time_cap is not None else {}
    settings = JobSettings(runtime=runtime, threads=threads, protocol=protocol, cache_mode=default_cache_mode(runtime))
    try:
        with HwlutClient(server, token=token) as client:
            doc = client.create_job(
                device, resolution=resolution, settings=settings, few_shot=k, few_shot_basis=basis or None
            )
    except HwlutError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(doc, indent=1, default=str))
