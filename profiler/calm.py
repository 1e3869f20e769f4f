"""A calm gate: wait (bounded) until the machine's sentinel is steady before measuring, and record the wait.

As phone benchmark harnesses wait on a canary: :func:`wait_until_calm` times
the sentinel in short rounds (``runs`` invocations each, their median) and
stops as soon as the last ``window`` round medians lie within ``threshold``
of their median (max − min over median), or when ``max_wait_s`` has passed.
The :class:`CalmGate` record says whether it was calm, how long it waited,
how many rounds it took and the last spread, for the report beside the figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .runtimes import Loaded

__all__ = ["CalmGate", "wait_until_calm"]


@dataclass(frozen=True)
class CalmGate:
    """What the gate saw: calm or not, seconds waited, rounds, the last spread and the threshold."""

    calm: bool
    waited_s: float
    rounds: int
    spread: float | None
    threshold: float
    sentinel_us: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def wait_until_calm(
    sentinel: Loaded,
    *,
    threshold: float = 0.05,
    max_wait_s: float = 30.0,
    window: int = 5,
    runs: int = 5,
    clock: Callable[[], int] = time.perf_counter_ns,
    now: Callable[[], float] = time.monotonic,
) -> CalmGate:
    """Time ``sentinel`` in rounds until the last ``window`` round medians spread ≤ ``threshold``, or time is up."""
    start = now()
    medians: list[float] = []
    spread: float | None = None
    while True:
        medians.append(statistics.median(sentinel.timed_run(clock) for _ in range(runs)))
        recent = medians[-window:]
        if len(recent) == window:
            mid = statistics.median(recent)
            spread = (max(recent) - min(recent)) / mid if mid > 0 else None
            if spread is not None and spread <= threshold:
                return CalmGate(True, now() - start, len(medians), spread, threshold, mid)
        if now() - start >= max_wait_s:
            return CalmGate(False, now() - start, len(medians), spread, threshold, medians[-1])
