"""Stand-ins for the artifact cache and a runtime, for protocol-level tests that export and time nothing.

Models take a fixed latency chosen by artifact label, so what a test asserts
is the bookkeeping around the measurement, not the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profiler.protocol import ProtocolConfig
from profiler.runtimes import Loaded, Runtime

#: A protocol that stops as soon as it may: one warm-up run, no slices, 1 s cap.
FAST_CFG = ProtocolConfig(
    warmup_runs=1,
    warmup_s=0.0,
    entry_warmup_s=0.0,
    slice_s=0.0,
    sentinel_slice_s=0.0,
    time_cap_s=1.0,
    min_passes=3,
    min_runs_per_pass=3,
)
#: A short protocol for real runtimes on a few 32x32 entries: 3 passes of 10 ms, a 0.15 s cap.
QUICK_CFG = ProtocolConfig(
    warmup_runs=3,
    warmup_s=0.05,
    entry_warmup_s=0.0,
    slice_s=0.01,
    sentinel_slice_s=0.005,
    time_cap_s=0.15,
    min_passes=3,
    min_runs_per_pass=3,
)


@dataclass
class FakeArtifact:
    """What the cache hands back: a path that names the target, and an input shape."""

    path: Path
    input_shape: tuple[int, ...]


@dataclass
class FakeCache:
    """Stands in for the artifact cache and records ``(label, format, input shape)`` of each request."""

    asked: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)

    def get(self, target: Any, fmt: str) -> FakeArtifact:
        """Record the request; export nothing."""
        self.asked.append((target.label, fmt, tuple(target.input_shape(1))))
        return FakeArtifact(Path(f"/nowhere/{target.label}.{fmt}"), tuple(target.input_shape(1)))


class FixedModel(Loaded):
    """A loaded model whose every timed run takes ``us`` microseconds."""

    def __init__(self, us: float) -> None:
        self.us = us

    def run_once(self) -> None:
        """Nothing to run."""

    def timed_run(self, clock: Any) -> float:
        """The fixed latency."""
        return self.us

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The input, unchanged."""
        return x


@dataclass
class FixedRuntime(Runtime):
    """A runtime whose models take a fixed latency by artifact label (500 µs when not listed)."""

    latencies: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name, self.format = "fake", "onnx"

    def load(self, path: Path, input_shape: tuple[int, ...]) -> Loaded:
        """A :class:`FixedModel` with the label's latency."""
        return FixedModel(self.latencies.get(path.stem, 500.0))

    def settings(self) -> dict[str, Any]:
        """What a LUT records of this runtime."""
        return {"runtime": "fake", "threads": self.threads}


def ticks() -> Any:
    """A clock (ns) that advances 1 µs per reading."""
    now = [0]

    def clock() -> int:
        now[0] += 1000
        return now[0]

    return clock
