"""The measurement protocol against a scripted clock: stopping rule, interleaving, sentinel, resume."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from profiler.local import LutMismatch, ProfileHooks, profile_space
from profiler.protocol import ProtocolConfig, measure_batch, measure_single
from profiler.runtimes import Loaded, Runtime
from searchspace import LatencyTable, load_space


class FakeClock:
    """A nanosecond clock that only moves when a fake model runs."""

    def __init__(self) -> None:
        self.now = 0
        self.factor = 1.0  # > 1: a slow spell of the whole machine

    def __call__(self) -> int:
        return self.now


class FakeLoaded(Loaded):
    """A model whose runs take ``base_us`` (times the clock's factor) plus seeded jitter."""

    def __init__(self, name: str, clock: FakeClock, base_us: float, jitter: float = 0.002, log: list | None = None):
        self.name, self.clock, self.base_us, self.jitter = name, clock, base_us, jitter
        self.rng = np.random.default_rng(abs(hash(name)) % 2**32)
        self.log = log if log is not None else []
        self.fail_after: int | None = None
        self.calls = 0

    def run_once(self) -> None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError(f"{self.name} crashed")
        self.log.append(self.name)
        us = self.base_us * self.clock.factor * (1 + self.jitter * abs(self.rng.standard_normal()))
        self.clock.now += int(us * 1000)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x


FAST = ProtocolConfig(
    warmup_runs=2,
    warmup_s=0.001,
    entry_warmup_s=0.0,
    slice_s=0.002,
    sentinel_slice_s=0.001,
    min_runs_per_pass=3,
    min_passes=3,
    time_cap_s=0.05,
)


def _batch(clock: FakeClock, log: list, **bases: float) -> list[tuple[str, Loaded]]:
    return [(k, FakeLoaded(k, clock, v, log=log)) for k, v in bases.items()]


def test_stopping_rule_precision_or_time_cap() -> None:
    clock, log = FakeClock(), []
    items = _batch(clock, log, quiet=100.0)
    noisy = FakeLoaded("noisy", clock, 100.0, jitter=3.0, log=log)
    items.append(("noisy", noisy))
    result = measure_batch(items, FakeLoaded("sentinel", clock, 50.0), FAST, clock=clock)
    quiet, loud = result.entries["quiet"], result.entries["noisy"]
    assert quiet.stop_reason == "ci" and quiet.passes == FAST.min_passes
    assert quiet.summary is not None and quiet.summary.ci_rel <= FAST.target_rel_ci
    assert loud.stop_reason == "time_cap" and loud.time_s >= FAST.time_cap_s
    assert loud.summary is not None and loud.summary.ci_rel > FAST.target_rel_ci
    assert quiet.summary.median == pytest.approx(100.0, rel=0.01)
    stats = quiet.stats()
    for name in ("median", "mean", "std", "min", "p10", "p90", "count", "ci_half_width", "stop_reason"):
        assert name in stats


def test_passes_interleave_every_active_entry_once() -> None:
    clock, log = FakeClock(), []
    items = _batch(clock, log, a=80.0, b=120.0, c=200.0)
    for _, m in items:
        m.jitter = 3.0  # never precise: all run to the time cap, pass after pass
    passes: list[tuple[int, list[str]]] = []
    seen = 0

    def on_pass(report: Any) -> None:
        nonlocal seen
        names = [n for n in log[seen:] if n != "sentinel"]
        seen = len(log)
        blocks = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
        passes.append((report.active, blocks))

    sentinel = FakeLoaded("sentinel", clock, 50.0, log=log)
    result = measure_batch(items, sentinel, FAST, clock=clock, on_pass=on_pass)
    assert result.passes >= 3
    for active, blocks in passes[1:]:  # the first report also saw the warm-up runs
        # a pass is a round-robin: every active entry once, each in one contiguous block
        assert len(blocks) == len(set(blocks)) == active
    full = [tuple(b) for a, b in passes if a == 3]
    assert len(full) >= 3 and len(set(full)) > 1  # the order is shuffled between passes
    assert all(r.passes >= 3 and r.stop_reason == "time_cap" for r in result.entries.values())


def test_slow_spell_in_one_pass_is_detected_and_redone() -> None:
    clock, log = FakeClock(), []
    items = _batch(clock, log, a=100.0, b=300.0)
    for _, m in items:
        m.jitter = 0.0  # exact: every kept sample equals the base latency unless a slow one slipped in
    reports = []

    def on_pass(report: Any) -> None:
        reports.append(report)
        if report.accepted and report.index == 0:
            clock.factor = 1.3  # the machine slows down during pass 1 ...
        elif not report.accepted:
            clock.factor = 1.0  # ... and recovers before it is measured again

    result = measure_batch(items, FakeLoaded("sentinel", clock, 50.0, jitter=0.0), FAST, clock=clock, on_pass=on_pass)
    redone = [r for r in reports if not r.accepted]
    assert [(r.index, r.attempt) for r in redone] == [(1, 0)]
    assert redone[0].drift == pytest.approx(0.3, abs=0.01)
    assert [(r.index, r.attempt) for r in reports if r.accepted] == [(0, 0), (1, 1), (2, 0)]
    assert result.passes == 3 and result.passes_redone == 1 and result.passes_flagged == 0
    assert all(abs(d) < 0.05 for d in result.drifts)
    for key, base in (("a", 100.0), ("b", 300.0)):
        assert set(result.entries[key].samples) == {base}  # no sample of the slow pass was kept
        assert result.entries[key].stop_reason == "ci"
    assert result.sentinel_record()["passes_redone"] == 1


@pytest.mark.parametrize("normalize", [False, True])
def test_sentinel_relative_timing_cancels_a_drift_below_the_threshold(normalize: bool) -> None:
    """A 3% slow-down in one pass is kept (below 5%); normalised, it moves no entry's samples."""
    clock, log = FakeClock(), []
    items = _batch(clock, log, a=100.0, b=300.0)
    for _, m in items:
        m.jitter = 0.0

    def on_pass(report: Any) -> None:
        if report.accepted and report.index == 0:
            clock.factor = 1.03
        elif report.accepted and report.index == 1:
            clock.factor = 1.0

    cfg = dataclasses.replace(FAST, min_passes=3, normalize=normalize)
    sentinel = FakeLoaded("sentinel", clock, 50.0, jitter=0.0)
    result = measure_batch(items, sentinel, cfg, clock=clock, on_pass=on_pass)
    assert result.passes_redone == 0
    for key, base in (("a", 100.0), ("b", 300.0)):
        samples = result.entries[key].samples
        stats = result.entries[key].stats()
        if normalize:
            assert samples == pytest.approx([base] * len(samples))
            assert stats["sentinel_factor"] == pytest.approx(1.0)
            assert min(result.entries[key].factors) == pytest.approx(1 / 1.03)
        else:
            assert max(samples) == pytest.approx(base * 1.03)  # the slow pass's samples were kept as measured
            assert "sentinel_factor" not in stats


@pytest.mark.parametrize("slice_s", [0.002, 0.02])
def test_the_sentinel_slices_do_not_shrink_with_the_entries_slice(slice_s: float) -> None:
    """Head and tail of a pass time the sentinel for ``sentinel_slice_s`` each, whatever the entries' slice."""
    clock, log = FakeClock(), []
    items = _batch(clock, log, a=100.0, big=5000.0)
    per_pass: list[tuple[int, int]] = []
    seen = 0

    def on_pass(report: Any) -> None:
        nonlocal seen
        segment, seen = log[seen:], len(log)
        if report.index > 0:  # the first pass's segment also holds the warm-up runs
            per_pass.append((segment.count("sentinel"), segment.count("big")))

    cfg = dataclasses.replace(
        FAST, slice_s=slice_s, sentinel_slice_s=0.005, min_runs_per_pass=4, min_passes=4, time_cap_s=1.0
    )
    measure_batch(items, FakeLoaded("sentinel", clock, 50.0, jitter=0.0, log=log), cfg, clock=clock, on_pass=on_pass)
    assert per_pass
    for sentinel_runs, big_runs in per_pass:
        assert 2 * 100 <= sentinel_runs <= 2 * 101  # 5 ms of 50 µs runs at each end
        assert big_runs >= cfg.pass_warmup_runs + cfg.min_runs_per_pass  # a 5 ms entry still gets its runs


def test_a_straggler_gets_a_slice_as_long_as_the_sentinel_takes() -> None:
    """When few entries are left, a pass's entries take at least as long as its sentinel (2 x sentinel_slice_s)."""
    clock, log = FakeClock(), []
    items = _batch(clock, log, quiet=100.0, noisy=100.0)
    items[0][1].jitter, items[1][1].jitter = 0.0, 3.0  # noisy never reaches the CI: it runs to its time cap
    timed: dict[int, list[int]] = {}
    seen = 0

    def on_pass(report: Any) -> None:
        nonlocal seen
        segment, seen = log[seen:], len(log)
        if report.accepted and report.index > 0:
            timed.setdefault(report.active, []).append(segment.count("noisy"))

    cfg = dataclasses.replace(
        FAST, slice_s=0.002, sentinel_slice_s=0.005, min_passes=3, min_runs_per_pass=1, time_cap_s=0.2
    )
    result = measure_batch(items, FakeLoaded("sentinel", clock, 50.0, log=log), cfg, clock=clock, on_pass=on_pass)
    assert result.entries["quiet"].stop_reason == "ci" and result.entries["noisy"].stop_reason == "time_cap"
    # noisy's runs take ~340 µs: a 2 ms slice holds ~6 of them, 5 ms (two left) ~15, 10 ms (alone) ~29
    assert np.median(timed[2]) >= 11
    assert np.median(timed[1]) >= 20


def test_lasting_drift_is_flagged_after_max_redo() -> None:
    clock, log = FakeClock(), []
    items = _batch(clock, log, a=100.0)
    items[0][1].jitter = 0.5

    def on_pass(report: Any) -> None:
        if report.accepted and report.index == 0:
            clock.factor = 1.5  # stays slow

    cfg = dataclasses.replace(FAST, time_cap_s=0.02, max_redo=2)
    result = measure_batch(items, FakeLoaded("sentinel", clock, 50.0, jitter=0.0), cfg, clock=clock, on_pass=on_pass)
    assert result.passes_flagged >= 1
    assert result.passes_redone >= cfg.max_redo


def test_a_failing_entry_is_an_error_not_a_crash() -> None:
    clock, log = FakeClock(), []
    items = _batch(clock, log, good=100.0, bad=100.0)
    items[1][1].fail_after = 20
    result = measure_batch(items, FakeLoaded("sentinel", clock, 50.0), FAST, clock=clock)
    assert result.entries["bad"].stop_reason == "error"
    assert "crashed" in (result.entries["bad"].error or "")
    assert result.entries["good"].stop_reason == "ci"


def test_measure_single_and_config_validation() -> None:
    clock = FakeClock()
    res = measure_single("net", FakeLoaded("net", clock, 2000.0), FAST, clock=clock)
    assert res.summary is not None and res.summary.median == pytest.approx(2000.0, rel=0.01)
    with pytest.raises(ValueError, match="time_cap_s"):
        ProtocolConfig(time_cap_s=0)
    with pytest.raises(ValueError, match="confidence"):
        ProtocolConfig(confidence=1.5)


# -- local mode with a scripted runtime --------------------------------------------------------


@dataclass
class _Artifact:
    path: Path
    input_shape: tuple[int, ...]


@dataclass
class FakeCache:
    """Stands in for the artifact cache: no export, a path per entry key."""

    root: Path

    def get(self, target: Any, fmt: str) -> _Artifact:
        return _Artifact(self.root / f"{target.label}.{fmt}", tuple(target.input_shape(1)))


class _KeyedLoaded(Loaded):
    def __init__(self, latency_us: float) -> None:
        self.latency_us = latency_us

    def run_once(self) -> None:
        pass

    def timed_run(self, clock: Any) -> float:
        return self.latency_us

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x


@dataclass
class FakeRuntime(Runtime):
    loads: list[str] = field(default_factory=list)
    version: str = "1.0"

    def __post_init__(self) -> None:
        self.name, self.format = "fake", "onnx"

    def load(self, path: Path, input_shape: tuple[int, ...]) -> Loaded:
        self.loads.append(path.stem)
        return _KeyedLoaded(10.0 + len(path.stem))

    def settings(self) -> dict[str, Any]:
        return {"runtime": "fake", "runtime_version": self.version, "threads": self.threads}


class _StopAfter(ProfileHooks):
    def __init__(self, passes: int) -> None:
        self.left = passes

    def passed(self, report: Any, done: float, total: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_profile_space_resumes_without_remeasuring(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    entries = space.distinct_entries()[:6]
    cfg = dataclasses.replace(FAST, warmup_runs=1, warmup_s=0.0, slice_s=0.0, sentinel_slice_s=0.0, time_cap_s=1.0)
    out = tmp_path / "lut.json"
    cache = FakeCache(tmp_path)
    first = FakeRuntime()
    with pytest.raises(KeyboardInterrupt):
        profile_space(space, first, out, cfg, entries=entries, batch_size=2, cache=cache, hooks=_StopAfter(4))
    partial = LatencyTable.load(out)
    assert not partial.complete
    kept = dict(partial.entries)
    assert 2 <= len(kept) < 6
    assert partial.overhead_us is not None

    second = FakeRuntime()
    table = profile_space(space, second, out, cfg, entries=entries, batch_size=2, cache=cache)
    assert set(table.entries) == {e.key for e in entries}
    assert not set(second.loads) & set(kept)  # finished entries were not loaded again
    for key, stats in kept.items():
        assert table.entries[key] == stats
    assert len(table.provenance["sessions"]) == 2
    doc = json.loads(out.read_text())
    assert doc["entries"][entries[0].key]["stop_reason"] == "ci"

    with pytest.raises(LutMismatch, match="runtime"):
        profile_space(space, FakeRuntime(version="2.0"), out, cfg, entries=entries, cache=cache)
