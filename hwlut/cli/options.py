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
