"""Local mode: profile every distinct entry of a space into a LUT file, resumably.

:func:`profile_space` exports the entries (through the artifact cache),
measures them batch by batch with :func:`profiler.protocol.measure_batch`,
and rewrites the LUT file atomically as entries finish, so an interrupted run
(Ctrl-C or ``kill -9``) leaves a valid partial file (``complete: false``) and
the same call later continues from it without measuring finished entries
again. Measurements are only merged when the checked provenance fields
(:data:`searchspace.provenance.CHECKED_FIELDS`) and the space agree.

The file's ``provenance`` holds: ``runtime`` (the runtime's ``settings()``:
runtime, version, threads, XNNPACK / optimisation level...), ``exporter``
(format and package versions), ``host`` (CPU model, cores, affinity mask,
governor, OS, Python...), ``protocol`` (the :class:`ProtocolConfig`),
``cache_mode`` (``warm``, or ``cold``: caches evicted before every timed run,
:mod:`profiler.runtimes.coldcache`; its flush size is in ``runtime``),
``sentinel`` (key, threshold, and per batch: reference, passes, redone,
flagged, drifts), ``overhead`` (the trivial model's statistics; its median is
``overhead_us``), ``started_at`` / ``finished_at`` and ``sessions`` (one per
run that added to the file), ``passes`` and ``passes_redone`` in total, and
with ``calm`` settings ``calm`` (:func:`profiler.calm.run_gate`: before the
first batch and each later one the sentinel is timed until steady, bounded,
and the wait is recorded).

Each session also says where its time went: ``wall_s`` (the whole call),
``inference_s`` (inside the runtime's invocations: warm-up, sentinel and
timed runs), ``export_s`` (exporting what the cache lacked), ``load_s``
(loading models), ``save_s`` and ``saves`` (rewriting the file), and in a
``cold`` or ``l2`` cache mode ``cache_eviction_s`` (reading the flush buffer
before each run: deliberate, outside the timed region and ``inference_s``).

The file is rewritten after a pass only when entries finished in it (or at
least :data:`SAVE_EVERY_S` seconds after the last write, to keep the pass
counters current): what a resumed run needs is saved at once, and passes
that finish nothing cost no file write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchspace import Entry, LatencyTable, SpaceSpec
from searchspace.provenance import mismatches

from .artifacts import cache_or_default, load_artifact, prefetch_artifacts
from .calm import CalmSettings, run_gate
from .export import exporter_versions
from .protocol import TRIVIAL_ENTRY, PassReport, ProtocolConfig, measure_batch
from .provenance import collect_host, now_iso
from .runtimes import Loaded, Runtime
from .runtimes.coldcache import eviction_seconds

__all__ = ["SAVE_EVERY_S", "LutMismatch", "ProfileHooks", "default_sentinel", "profile_space"]

#: A pass that finished no entry rewrites the file only when the last write is this old (seconds).
SAVE_EVERY_S = 5.0


class LutMismatch(ValueError):
    """An existing LUT file was measured differently (another space, runtime, settings or CPU)."""


class ProfileHooks:
    """Progress callbacks of :func:`profile_space`; every method is optional (no-ops here)."""

    def start(self, total: int, done: int) -> None:
        """``total`` entries in the space selection, ``done`` of them already in the file."""

    def exporting(self, key: str, index: int, count: int) -> None:
        """Exporting / loading entry ``index`` of ``count`` of the next batch."""

    def exported(self, finished: int, count: int) -> None:
        """``finished`` of the ``count`` artifacts the run needs are in the cache (called once per artifact)."""

    def measuring(self, batch: int, batches: int, size: int) -> None:
        """Measuring batch ``batch`` (1-based) of ``batches``, with ``size`` entries."""

    def calming(self, where: str, max_wait_s: float) -> None:
        """A calm gate waits (at most ``max_wait_s``) for a steady sentinel before ``where`` (``batch 1``...)."""

    def passed(self, report: PassReport, done: float, total: int) -> None:
        """A pass ended (accepted or to be measured again); about ``done`` entries of ``total`` are finished.

        ``done`` counts an unfinished entry by the share of its time cap it used.
        """


def default_sentinel(space: SpaceSpec) -> Entry:
    """A mid-sized block of the middle layer (``k3_e3`` where it is a candidate), fixed per space."""
    layer = space.layers[len(space.layers) // 2]
    names = layer.candidate_names
    pick = "k3_e3" if "k3_e3" in names else next((n for n in names if n != "skip"), names[0])
    return layer.entry(pick)


def _batches(entries: Sequence[Entry], size: int | None) -> list[list[Entry]]:
    if not size or size >= len(entries):
        return [list(entries)] if entries else []
    return [list(entries[i : i + size]) for i in range(0, len(entries), size)]


@dataclass
class _Writer:
    """Rewrites the LUT file atomically and counts what that costs (``save_s``, ``saves``)."""

    table: LatencyTable
    out: Path
    save_s: float = 0.0
    saves: int = 0
    last: float = field(default_factory=time.perf_counter)

    def save(self, *, force: bool = True) -> None:
        """Write the file; with ``force=False`` only when the last write is :data:`SAVE_EVERY_S` old."""
        now = time.perf_counter()
        if not force and now - self.last < SAVE_EVERY_S:
            return
        self.table.save(self.out)
        self.last = time.perf_counter()
        self.save_s += self.last - now
        self.saves += 1


@dataclass
class _Artifacts:
    runtime: Runtime
    cache: Any
    load_s: float = 0.0

    def prefetch(self, entries: Sequence[Entry], on_progress: Callable[[int, int], None] | None = None) -> None:
        """Export what the cache lacks, grouped (a failure names its entry at :meth:`load`)."""
        prefetch_artifacts(self.cache, entries, self.runtime.format, on_progress)

    def load(self, entry: Entry) -> Loaded:
        """Load an entry's artifact (exported now when the cache lacks it), adding up ``load_s``."""
        t0 = time.perf_counter()
        try:
            return load_artifact(self.cache, entry, self.runtime)
        finally:
            self.load_s += time.perf_counter() - t0


def profile_space(
    space: SpaceSpec,
    runtime: Runtime,
    out: str | Path,
    config: ProtocolConfig | None = None,
    *,
    entries: Sequence[Entry] | None = None,
    batch_size: int | None = None,
    sentinel: Entry | None = None,
    cache: Any = None,
    hooks: ProfileHooks | None = None,
    calm: CalmSettings | None = None,
) -> LatencyTable:
    """Profile ``entries`` (default: every distinct entry of ``space``) into the LUT file ``out``.

    With ``calm``, every batch waits (bounded) for a calm sentinel first; the
    gates go into ``provenance["calm"]`` (None: no gate).

    Continues an existing file at ``out`` (raises :class:`LutMismatch` when it
    was measured differently). The file is complete when every selected entry
    of the space has statistics. Returns the table as written.
    """
    began = time.perf_counter()
    evicted_before = eviction_seconds(runtime)
    cfg = config or ProtocolConfig()
    hooks = hooks or ProfileHooks()
    out = Path(out)
    artifacts = _Artifacts(runtime, cache_or_default(cache))
    wanted = list(dict.fromkeys(entries)) if entries is not None else space.distinct_entries()  # each once
    sentinel = sentinel or default_sentinel(space)

    provenance: dict[str, Any] = {
        "runtime": runtime.settings(),
        "exporter": {"format": runtime.format, "versions": exporter_versions(runtime.format)},
        "host": collect_host(),
        "protocol": cfg.to_dict(),
        "cache_mode": runtime.settings().get("cache_mode", "warm"),  # profiler.runtimes.coldcache
    }
    session: dict[str, Any] = {
        "started_at": now_iso(),
        "finished_at": None,
        "measured": 0,
        "errors": 0,
        "protocol": cfg.to_dict(),
    }
    if out.exists():
        table = LatencyTable.load(out)
        if table.space.spec_hash != space.spec_hash:
            raise LutMismatch(f"{out}: holds another space ({table.space.name}, hash {table.space.spec_hash[:12]})")
        diff = mismatches(table.provenance, provenance)
        if diff:
            raise LutMismatch(f"{out}: measured differently; " + "; ".join(diff))
        table.provenance = {**table.provenance, **provenance, "protocol": table.provenance.get("protocol")}
        table.provenance.setdefault("sessions", [])
    else:
        table = LatencyTable(space=space, device=_device(runtime, provenance))
        table.provenance = {**provenance, "started_at": session["started_at"], "sessions": []}
    prov = table.provenance
    prov["sessions"].append(session)
    prov.setdefault("sentinel", {"key": sentinel.key, "threshold": cfg.sentinel_threshold, "batches": []})
    prov.setdefault("passes", 0)
    prov.setdefault("passes_redone", 0)
    table.errors = {}  # failed entries are tried again
    table.complete = False
    writer = _Writer(table, out)
    writer.save()
    inference_s = 0.0
    export_s = 0.0

    todo = [e for e in wanted if e.key not in table.entries]
    total = len(wanted)
    hooks.start(total, total - len(todo))
    if todo:
        exported = getattr(hooks, "exported", None)  # hooks written before it may lack it
        if exported is not None:
            exported(0, len(todo) + 2)
        t0 = time.perf_counter()
        artifacts.prefetch([TRIVIAL_ENTRY, sentinel, *todo], exported)
        export_s = time.perf_counter() - t0

    if table.overhead_us is None:
        hooks.exporting(TRIVIAL_ENTRY.key, 0, 1)
        trivial = artifacts.load(TRIVIAL_ENTRY)
        try:  # the trivial model is its own sentinel, as in measure_single
            measured = measure_batch([(TRIVIAL_ENTRY.key, trivial)], trivial, cfg)
        finally:
            trivial.close()
        inference_s += measured.inference_s
        overhead = measured.entries[TRIVIAL_ENTRY.key]
        if overhead.summary is not None:
            table.overhead_us = overhead.summary.median
            prov["overhead"] = {"entry": TRIVIAL_ENTRY.key, **overhead.stats()}
        writer.save()

    batches = _batches(todo, batch_size)
    sentinel_model: Loaded | None = None
    try:
        if batches:
            sentinel_model = artifacts.load(sentinel)
        for number, batch in enumerate(batches, start=1):
            assert sentinel_model is not None
            _gate(sentinel_model, calm, prov, number, hooks)
            inference_s += _measure_one_batch(
                writer, batch, number, len(batches), sentinel_model, artifacts, cfg, hooks, total
            )
            session["measured"] = sum(1 for e in wanted if e.key in table.entries) - (total - len(todo))
    finally:
        if sentinel_model is not None:
            sentinel_model.close()
        session["finished_at"] = now_iso()
        session["errors"] = len(table.errors)
        table.complete = not table.missing(space.distinct_entries())
        if table.complete or not [e for e in wanted if e.key not in table.entries]:
            prov["finished_at"] = session["finished_at"]
        session.update(
            wall_s=round(time.perf_counter() - began, 3),
            inference_s=round(inference_s, 3),
            export_s=round(export_s, 3),
            load_s=round(artifacts.load_s, 3),
            save_s=round(writer.save_s, 3),
            saves=writer.saves + 1,
        )
        evicted = eviction_seconds(runtime)
        if evicted is not None and evicted_before is not None:
            session["cache_eviction_s"] = round(evicted - evicted_before, 3)
        writer.save()
    return table


def _gate(sentinel: Loaded, calm: CalmSettings | None, prov: dict[str, Any], number: int, hooks: Any) -> None:
    """The calm gate before batch ``number`` (the longer wait before the first), told to the hooks."""
    if calm is None:
        return
    wait = calm.build_wait_s if number == 1 else calm.batch_wait_s
    calming = getattr(hooks, "calming", None)  # hooks written before it may lack it
    if calming is not None and wait > 0:
        calming(f"batch {number}", wait)
    run_gate(sentinel, calm, prov, first=number == 1, where=f"batch {number}")


def _device(runtime: Runtime, provenance: dict[str, Any]) -> dict[str, Any]:
    host = provenance["host"]
    if runtime.name == "adb":
        phone = provenance["runtime"].get("phone", {})
        return {"kind": "android", **phone}
    return {"kind": "local", "hostname": host["hostname"], "cpu_model": host["cpu_model"], "cores": host["cores"]}


def _measure_one_batch(
    writer: _Writer,
    batch: list[Entry],
    number: int,
    batches: int,
    sentinel_model: Loaded,
    artifacts: _Artifacts,
    cfg: ProtocolConfig,
    hooks: ProfileHooks,
    total: int,
) -> float:
    """Load and measure one batch, saving finished entries as they finish; returns its inference seconds."""
    table = writer.table
    prov = table.provenance
    loaded: list[tuple[str, Loaded]] = []
    try:
        for i, entry in enumerate(batch):
            hooks.exporting(entry.key, i, len(batch))
            try:
                loaded.append((entry.key, artifacts.load(entry)))
            except Exception as exc:  # an entry that cannot be exported or loaded is that entry's error
                table.errors[entry.key] = f"load: {type(exc).__name__}: {exc}"
        writer.save()
        hooks.measuring(number, batches, len(loaded))
        base_done = len(table.entries) + len(table.errors)

        def on_pass(report: PassReport) -> None:
            for res in report.finished:
                if res.stop_reason == "error":
                    table.errors[res.key] = res.error or "error"
                else:
                    table.entries[res.key] = res.stats()
            prov["passes_redone"] += 0 if report.accepted else 1
            prov["passes"] += 1 if report.accepted else 0
            writer.save(force=bool(report.finished))
            hooks.passed(report, base_done + report.progress, total)

        result = measure_batch(loaded, sentinel_model, cfg, on_pass=on_pass)
        for res in result.entries.values():  # every outcome, also where no pass ran at all
            if res.stop_reason == "error":
                table.errors[res.key] = res.error or "error"
            elif res.done and res.key not in table.entries:
                table.entries[res.key] = res.stats()
        prov["sentinel"]["batches"].append({"entries": len(loaded), **result.sentinel_record()})
        prov["sentinel"]["passes_redone"] = sum(b["passes_redone"] for b in prov["sentinel"]["batches"])
        prov["sentinel"]["max_abs_drift"] = max(b["max_abs_drift"] for b in prov["sentinel"]["batches"])
        prov["inference_share"] = result.inference_s / result.wall_s if result.wall_s else None
        writer.save()
        return result.inference_s
    finally:
        for _, model in loaded:
            model.close()
