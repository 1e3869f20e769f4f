"""Command-line options that several commands share: the measurement protocol's knobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from pathlib import Path

    from profiler.protocol import ProtocolConfig
    from searchspace import LatencyTable

__all__ = [
    "DEFAULT_MIN_PASSES",
    "DEFAULT_PRECISION",
    "DEFAULT_SLICE_S",
    "DEFAULT_TIME_CAP",
    "DEFAULT_WARMUP_RUNS",
    "DEFAULT_WARMUP_TIME",
    "MinPassesOpt",
    "PrecisionOpt",
    "SliceOpt",
    "TimeCapOpt",
    "WarmupRunsOpt",
    "WarmupTimeOpt",
    "lut_file_option",
    "protocol_config",
    "server_lut_option",
]

#: :class:`profiler.protocol.ProtocolConfig`'s defaults, as the commands' option defaults (kept equal by a test;
#: importing the protocol here would slow every command's start).
DEFAULT_PRECISION = 0.01
DEFAULT_TIME_CAP = 3.0
DEFAULT_SLICE_S = 0.01
DEFAULT_MIN_PASSES = 12
DEFAULT_WARMUP_RUNS = 10
DEFAULT_WARMUP_TIME = 0.5

PrecisionOpt = Annotated[
    float, typer.Option(min=1e-6, help="Stop measuring a model when its median's 95% CI is within ± this share.")
]
TimeCapOpt = Annotated[float, typer.Option(min=1e-3, help="Measuring time cap per model, seconds.")]
SliceOpt = Annotated[float, typer.Option("--slice", min=0.0, help="Timed seconds per model and pass.")]
MinPassesOpt = Annotated[int, typer.Option(min=1, help="Passes before the CI rule may stop a model.")]
WarmupRunsOpt = Annotated[int, typer.Option(min=0, help="Warm-up runs (the sentinel's and each model's).")]
WarmupTimeOpt = Annotated[float, typer.Option(min=0.0, help="Warm-up seconds of the sentinel per batch.")]


def protocol_config(
    *,
    precision: float,
    time_cap: float,
    slice_s: float,
    min_passes: int,
    warmup_runs: int,
    warmup_time: float,
    **extra: Any,
) -> ProtocolConfig:
    """The :class:`ProtocolConfig` these options describe (``extra``: further fields as they are)."""
    from profiler.protocol import ProtocolConfig

    return ProtocolConfig(
        warmup_runs=warmup_runs,
        warmup_s=warmup_time,
        target_rel_ci=precision,
        time_cap_s=time_cap,
        slice_s=slice_s,
        min_passes=min_passes,
        **extra,
    )


def lut_file_option(path: Path, param_hint: str) -> LatencyTable:
    """The hwlut LUT file at ``path``; a file that is none is a usage error naming ``param_hint``."""
    from searchspace import LatencyTable, LutFileError

    try:
        return LatencyTable.load(path)
    except (LutFileError, KeyError, TypeError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint=param_hint) from None


def server_lut_option(server: str, device: str, job: str, token: str | None) -> tuple[int, LatencyTable]:
    """A server's LUT ``job`` of ``device`` and the job id it came from.

    On failure it names the server and exits: 1 when the server cannot be reached, 2 when it refuses
    or answers something that is no hwlut LUT.
    """
    from hwlut.client import ApiError, HwlutClient, ServerUnreachable
    from searchspace import LutFileError

    try:
        with HwlutClient(server, token=token) as client:
            return client.lut_and_id(device, job)
    except ServerUnreachable as exc:
        typer.echo(f"error: {server}: {exc}", err=True)
        raise typer.Exit(1) from None
    except ApiError as exc:
        typer.echo(f"error: {server}: LUT {job} of {device!r}: {exc}", err=True)
        raise typer.Exit(2) from None
    except (LutFileError, KeyError, TypeError, ValueError) as exc:
        typer.echo(f"error: {server}: LUT {job} of {device!r} is no hwlut LUT: {exc}", err=True)
        raise typer.Exit(2) from None
