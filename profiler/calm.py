"""A calm gate: wait (bounded) until the machine's sentinel is steady before measuring, and record the wait.

As phone benchmark harnesses wait on a canary: :func:`wait_until_calm` times
the sentinel in short rounds (``runs`` invocations each, their median) and
stops as soon as the last ``window`` round medians lie within ``threshold``
of their median (max − min over median), or when ``max_wait_s`` has passed.
The :class:`CalmGate` record says whether it was calm, how long it waited,
how many rounds it took and the last spread, for the report beside the figures.

A build (:func:`profiler.local.profile_space`, the agent's leases, a recheck)
gates with :class:`CalmSettings`: a longer wait before its first batch, a
shorter one before each later batch, 0 turning either off. :func:`run_gate`
runs one gate and adds it to ``provenance["calm"]``: the settings, totals
(``count`` gates, ``waited_s``, ``not_calm`` gates that gave up) and only the
last :data:`KEEP_GATES` records (``gates``), so the record stays small (a
server caps a job's provenance). The calm settings are not measurement
settings: a LUT continued with others is no mismatch.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .runtimes import Loaded

__all__ = ["KEEP_GATES", "CalmGate", "CalmSettings", "calm_line", "run_gate", "wait_until_calm"]

#: Gate records kept in ``provenance["calm"]["gates"]`` (the totals count them all).
KEEP_GATES = 5


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


@dataclass(frozen=True)
class CalmSettings:
    """A build's calm gates: the spread threshold and the longest waits (s) before the build and each later batch."""

    threshold: float = 0.05
    build_wait_s: float = 20.0
    batch_wait_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"calm threshold: expected > 0, got {self.threshold!r}")
        for name in ("build_wait_s", "batch_wait_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"calm {name}: expected >= 0 seconds, got {getattr(self, name)!r}")

    @classmethod
    def from_wait(cls, wait_s: float, threshold: float = 0.05) -> CalmSettings:
        """``wait_s`` before the build, half of it (at most 10 s) before each later batch; 0 turns the gates off."""
        return cls(threshold, wait_s, min(wait_s / 2, 10.0))


def run_gate(
    sentinel: Loaded, settings: CalmSettings | None, provenance: dict[str, Any], *, first: bool, where: str
) -> CalmGate | None:
    """Wait (bounded) for a calm ``sentinel`` and add the gate to ``provenance["calm"]``; None when the gate is off."""
    wait = 0.0 if settings is None else settings.build_wait_s if first else settings.batch_wait_s
    if settings is None or wait <= 0:
        return None
    gate = wait_until_calm(sentinel, threshold=settings.threshold, max_wait_s=wait)
    record = provenance.setdefault("calm", {"count": 0, "waited_s": 0.0, "not_calm": 0, "gates": []})
    record.update(threshold=settings.threshold, build_wait_s=settings.build_wait_s, batch_wait_s=settings.batch_wait_s)
    record["count"] += 1
    record["waited_s"] = round(record["waited_s"] + gate.waited_s, 3)
    record["not_calm"] += 0 if gate.calm else 1
    rounded = {k: round(v, 5) if isinstance(v, float) else v for k, v in gate.to_dict().items() if k != "threshold"}
    record["gates"] = [*record["gates"], {"at": where, **rounded}][-KEEP_GATES:]
    return gate


def calm_line(provenance: dict[str, Any]) -> str | None:
    """``calm gate: 3 gate(s) waited 12.5 s, 1 gave up (threshold 5%)``, or None when no gate ran."""
    calm = provenance.get("calm")
    if not calm or not calm.get("count"):
        return None
    gave_up = f"{calm['not_calm']} gave up (measured anyway)" if calm["not_calm"] else "all calm"
    return (
        f"calm gate: {calm['count']} gate(s) waited {calm['waited_s']:.1f} s in all, {gave_up} "
        f"(threshold {calm['threshold']:.0%})"
    )
