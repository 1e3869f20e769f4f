"""Command-line options that several commands share: the measurement protocol's knobs."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["MinPassesOpt", "PrecisionOpt", "SliceOpt", "TimeCapOpt", "WarmupRunsOpt", "WarmupTimeOpt"]

PrecisionOpt = Annotated[
    float, typer.Option(min=1e-6, help="Stop measuring a model when its median's 95% CI is within ± this share.")
]
TimeCapOpt = Annotated[float, typer.Option(min=1e-3, help="Measuring time cap per model, seconds.")]
SliceOpt = Annotated[float, typer.Option("--slice", min=0.0, help="Timed seconds per model and pass.")]
MinPassesOpt = Annotated[int, typer.Option(min=1, help="Passes before the CI rule may stop a model.")]
WarmupRunsOpt = Annotated[int, typer.Option(min=0, help="Warm-up runs (the sentinel's and each model's).")]
WarmupTimeOpt = Annotated[float, typer.Option(min=0.0, help="Warm-up seconds of the sentinel per batch.")]
