"""The measurement protocol: warm-up, interleaved passes, a sentinel, a stopping rule.

The runner only yields samples (``Loaded.timed_run``); this module decides
what to run and when to stop; the numbers are analysed by the pure
:mod:`profiler.stats`. For one batch of loaded models:

1. **Warm-up.** The sentinel runs until both ``warmup_runs`` runs and
   ``warmup_s`` seconds have passed (the machine and its clocks warm up), then
   one slice of it sets the sentinel's reference. Each entry then runs until
   both ``warmup_runs`` runs and ``entry_warmup_s`` seconds have passed.
2. **Interleaved passes.** Each pass visits every unfinished entry once, in a
   seeded shuffled order (round-robin; google/benchmark's random
   interleaving), giving each ``pass_warmup_runs`` untimed runs and then
   timed single invocations for ``slice_s`` (at least ``min_runs_per_pass``).
   A slow spell of the machine thus touches every entry alike. The defaults
   are many short passes (12 of 10 ms): an entry's samples are spread over
   the whole batch instead of three moments of it, which cut the per-entry
   spread between two builds by a third to a half against 3 passes of 50 ms
   (README, profiling figures); the 10 runs at least per pass keep a whole
   network (~4 ms a run) timed back to back, as deployed, not just after
   other models. When few entries are left, each gets a longer slice so that
   a pass's entries take at least as long as its sentinel
   (``2 x sentinel_slice_s / entries``).
3. **Sentinel.** The sentinel is timed at the start and at the end of every
   pass, for ``sentinel_slice_s`` each (not tied to the entries' slice: a
   shorter one would be noisier and trigger redos on noise). If either
   median moved beyond ``sentinel_threshold`` (5%) from the
   reference (the median of the accepted sentinel medians so far), the pass's
   samples are dropped and the pass is measured again, at most ``max_redo``
   times; a pass accepted after that is *flagged*. Both counts are reported.
   With ``normalize`` on, every sample of an accepted pass is also scaled by
   ``reference / sqrt(head x tail)`` (*sentinel-relative timing*): a drift
   below the threshold, which the pass keeps, then moves no entry. The LUT
   then reads "at the batch's reference speed of the machine"; each entry
   records the median factor it was scaled by (``sentinel_factor``).
4. **Stopping rule.** After each accepted pass an entry stops when the 95% CI
   of its median is within ``±target_rel_ci`` of it (after at least
   ``min_passes`` passes): stop reason ``"ci"``; or when its accepted
   measuring time reaches ``time_cap_s``: ``"time_cap"``. An entry whose
   runtime raises stops with ``"error"`` and the batch goes on.

Clocks are injectable (``clock`` returns nanoseconds; default
:func:`time.perf_counter_ns`), so the whole protocol runs deterministically
against a scripted runtime in the tests.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from searchspace import Entry
from searchspace.jobs import PROTOCOL_FIELDS

from .runtimes import Loaded
from .stats import Summary, relative_drift, summarize

__all__ = [
    "STOP_REASONS",
    "TRIVIAL_ENTRY",
    "BatchResult",
    "EntryResult",
    "PassReport",
    "ProtocolConfig",
    "measure_batch",
    "measure_single",
]

#: Why an entry stopped: its median's CI reached the target, its time cap was hit, or its runtime failed.
STOP_REASONS = ("ci", "time_cap", "error")

#: The trivial model whose latency is a runtime's fixed per-invocation overhead: a 1→1 fully connected layer.
TRIVIAL_ENTRY = Entry("fc", 1, 1, 1, 1)

Clock = Callable[[], int]


@dataclass(frozen=True)
class ProtocolConfig:
    """Settings of the measurement protocol (times in seconds, precision relative)."""

    warmup_runs: int = 10
    warmup_s: float = 0.5
    entry_warmup_s: float = 0.02
    target_rel_ci: float = 0.01
    confidence: float = 0.95
    time_cap_s: float = 3.0
    slice_s: float = 0.01
    min_runs_per_pass: int = 10
    sentinel_slice_s: float = 0.025
    min_passes: int = 12
    pass_warmup_runs: int = 1
    sentinel_threshold: float = 0.05
    max_redo: int = 3
    seed: int = 0
    normalize: bool = False

    def __post_init__(self) -> None:
        # the checks a job's settings get too (searchspace.jobs.PROTOCOL_FIELDS): one definition
        problems = [
            f"{name}: {problem}"
            for name, check in PROTOCOL_FIELDS.items()
            if (problem := check(getattr(self, name))) is not None
        ]
        if problems:
            raise ValueError("ProtocolConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for provenance)."""
        return asdict(self)


@dataclass
class EntryResult:
    """One entry's samples (µs) and how its measurement ended."""

    key: str
    samples: list[float] = field(default_factory=list)
    passes: int = 0
    time_s: float = 0.0
    stop_reason: str | None = None
    error: str | None = None
    summary: Summary | None = None
    factors: list[float] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the entry stopped (for any reason)."""
        return self.stop_reason is not None

    def stats(self) -> dict[str, Any]:
        """The LUT file's per-entry record: every statistic, the stop reason, passes and measuring time."""
        if self.summary is None:
            raise ValueError(f"{self.key}: no statistics ({self.error or 'not measured'})")
        out = {**self.summary.to_dict(), "stop_reason": self.stop_reason, "passes": self.passes, "time_s": self.time_s}
        if self.factors:  # sentinel-relative timing (ProtocolConfig.normalize)
            out["sentinel_factor"] = float(np.median(self.factors))
        return out


@dataclass(frozen=True)
class PassReport:
    """What one pass did; ``accepted`` is False for a pass that is measured again."""

    index: int
    attempt: int
    accepted: bool
    flagged: bool
    drift: float
    sentinel_us: tuple[float, float]
    reference_us: float
    active: int
    finished: tuple[EntryResult, ...]
    progress: float


@dataclass
class BatchResult:
    """All entries of a batch, with the sentinel's record and timing figures."""

    entries: dict[str, EntryResult]
    sentinel_reference_us: float
    passes: int = 0
    passes_redone: int = 0
    passes_flagged: int = 0
    drifts: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    inference_s: float = 0.0

    def sentinel_record(self) -> dict[str, Any]:
        """The sentinel's provenance: reference, passes, redone and flagged counts, drifts."""
        return {
            "reference_us": self.sentinel_reference_us,
            "passes": self.passes,
            "passes_redone": self.passes_redone,
            "passes_flagged": self.passes_flagged,
            "max_abs_drift": max((abs(d) for d in self.drifts), default=0.0),
            "drift": [round(d, 5) for d in self.drifts],
        }


class _Timer:
    """Counts the time spent inside runtime calls: the timed invocations' own latencies.

    What a model does outside its timed region (a cache-mode flush before the
    run, :mod:`profiler.runtimes.coldcache`) is not inference and is not counted.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.inside_ns = 0

    def run(self, loaded: Loaded) -> float:
        us = loaded.timed_run(self.clock)
        self.inside_ns += int(us * 1000)
        return us

    def warm(self, loaded: Loaded, runs: int, seconds: float) -> None:
        deadline = self.clock() + int(seconds * 1e9)
        done = 0
        while done < runs or self.clock() < deadline:
            self.run(loaded)
            done += 1

    def slice(self, loaded: Loaded, seconds: float, min_runs: int) -> list[float]:
        out: list[float] = []
        deadline = self.clock() + int(seconds * 1e9)
        while len(out) < min_runs or self.clock() < deadline:
            out.append(self.run(loaded))
        return out


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def measure_batch(
    items: Sequence[tuple[str, Loaded]],
    sentinel: Loaded,
    config: ProtocolConfig | None = None,
    *,
    clock: Clock = time.perf_counter_ns,
    on_pass: Callable[[PassReport], None] | None = None,
) -> BatchResult:
    """Measure ``items`` (key, loaded model) in interleaved passes with ``sentinel`` in every pass.

    Returns every entry's samples, summary and stop reason. ``on_pass`` is
    called after every pass, accepted or not, with the entries that finished in
    it (so a caller can save them at once). An entry whose runtime raises is
    recorded with stop reason ``"error"``; an error of the sentinel raises.
    """
    cfg = config or ProtocolConfig()
    timer = _Timer(clock)
    started = clock()
    rng = random.Random(cfg.seed)
    results = {key: EntryResult(key) for key, _ in items}
    loaded = dict(items)
    if len(loaded) != len(items):
        raise ValueError("measure_batch: duplicate keys in the batch")

    timer.warm(sentinel, cfg.warmup_runs, cfg.warmup_s)
    references = [float(np.median(timer.slice(sentinel, 2 * cfg.sentinel_slice_s, cfg.min_runs_per_pass)))]
    for key, model in items:
        try:
            timer.warm(model, cfg.warmup_runs, cfg.entry_warmup_s)
        except Exception as exc:
            results[key].stop_reason, results[key].error = "error", _error_text(exc)

    batch = BatchResult(results, references[0])
    warmup_failed = [k for k in loaded if results[k].done]
    index = 0
    while True:
        active = [k for k in loaded if not results[k].done]
        if not active:
            break
        rng.shuffle(active)
        attempt = 0
        while True:
            reference = float(np.median(references))
            # the entries of a pass take at least as long as its sentinel: a few stragglers get longer slices
            slice_s = max(cfg.slice_s, 2 * cfg.sentinel_slice_s / len(active))
            head = float(np.median(timer.slice(sentinel, cfg.sentinel_slice_s, cfg.min_runs_per_pass)))
            gathered: dict[str, tuple[list[float], float]] = {}
            failed: list[str] = warmup_failed if index == 0 and attempt == 0 else []
            for key in active:
                if results[key].done:
                    continue
                t0 = clock()
                try:
                    timer.warm(loaded[key], cfg.pass_warmup_runs, 0.0)
                    remaining = cfg.time_cap_s - results[key].time_s
                    samples = timer.slice(loaded[key], min(slice_s, max(remaining, 0.0)), cfg.min_runs_per_pass)
                except Exception as exc:
                    results[key].stop_reason, results[key].error = "error", _error_text(exc)
                    failed.append(key)
                    continue
                gathered[key] = (samples, (clock() - t0) / 1e9)
            tail = float(np.median(timer.slice(sentinel, cfg.sentinel_slice_s, cfg.min_runs_per_pass)))
            drift = max((relative_drift(head, reference), relative_drift(tail, reference)), key=abs)
            moved = abs(drift) > cfg.sentinel_threshold

            report = functools.partial(
                PassReport,
                index=index,
                attempt=attempt,
                drift=drift,
                sentinel_us=(head, tail),
                reference_us=reference,
                active=len(active),
            )
            if moved and attempt < cfg.max_redo:
                batch.passes_redone += 1
                if on_pass is not None:
                    finished = tuple(results[k] for k in failed)
                    on_pass(report(accepted=False, flagged=False, finished=finished, progress=_progress(results, cfg)))
                attempt += 1
                continue
            break
        batch.passes += 1
        batch.passes_flagged += int(moved)
        batch.drifts.append(drift)
        if not moved:
            references.extend((head, tail))
        finished_now = [results[k] for k in failed]
        factor = reference / math.sqrt(head * tail) if cfg.normalize and head > 0 and tail > 0 else None
        for key, (samples, spent) in gathered.items():
            res = results[key]
            if factor is not None:
                res.factors.append(factor)
                samples = [x * factor for x in samples]
            res.samples.extend(samples)
            res.passes += 1
            res.time_s += spent
            res.summary = summarize(res.samples, cfg.confidence)
            if res.passes >= cfg.min_passes and res.summary.ci_rel <= cfg.target_rel_ci:
                res.stop_reason = "ci"
            elif res.time_s >= cfg.time_cap_s:
                res.stop_reason = "time_cap"
            if res.done:
                finished_now.append(res)
        if on_pass is not None:
            on_pass(
                report(accepted=True, flagged=moved, finished=tuple(finished_now), progress=_progress(results, cfg))
            )
        index += 1
    batch.wall_s = (clock() - started) / 1e9
    batch.inference_s = timer.inside_ns / 1e9
    return batch


def _progress(results: dict[str, EntryResult], cfg: ProtocolConfig) -> float:
    """Entries done, counting an unfinished one by the share of its time cap it used (a pessimistic ETA)."""
    return math.fsum(1.0 if r.done else min(0.99, r.time_s / cfg.time_cap_s) for r in results.values())


def measure_single(
    key: str,
    model: Loaded,
    config: ProtocolConfig | None = None,
    *,
    clock: Clock = time.perf_counter_ns,
) -> EntryResult:
    """Measure one model with the same protocol, using it as its own sentinel (e.g. a whole network)."""
    return measure_batch([(key, model)], model, config, clock=clock).entries[key]
