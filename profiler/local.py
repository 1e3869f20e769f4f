"""Local mode: profile every distinct entry of a space into a LUT file, resumably.

:func:`profile_space` exports the entries (through the artifact cache),
measures them batch by batch with :func:`profiler.protocol.measure_batch`,
and rewrites the LUT file atomically after every pass, so an interrupted run
(Ctrl-C or ``kill -9``) leaves a valid partial file (``complete: false``) and
the same call later continues from it without measuring finished entries
again. Measurements are only merged when the checked provenance fields
(:data:`profiler.provenance.CHECKED_FIELDS`) and the space agree.

The file's ``provenance`` holds: ``runtime`` (the runtime's ``settings()``:
runtime, version, threads, XNNPACK / optimisation level...), ``exporter``
(format and package versions), ``host`` (CPU model, cores, affinity mask,
governor, OS, Python...), ``protocol`` (the :class:`ProtocolConfig`),
``sentinel`` (key, threshold, and per batch: reference, passes, redone,
flagged, drifts), ``overhead`` (the trivial model's statistics; its median is
``overhead_us``), ``started_at`` / ``finished_at`` and ``sessions`` (one per
run that added to the file), ``passes`` and ``passes_redone`` in total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchspace import Entry, LatencyTable, SpaceSpec

from .protocol import TRIVIAL_ENTRY, PassReport, ProtocolConfig, measure_batch, measure_single
from .provenance import collect_host, mismatches, now_iso
from .runtimes import Loaded, Runtime

__all__ = ["LutMismatch", "ProfileHooks", "default_sentinel", "profile_space"]


class LutMismatch(ValueError):
    """An existing LUT file was measured differently (another space, runtime, settings or CPU)."""


class ProfileHooks:
    """Progress callbacks of :func:`profile_space`; every method is optional (no-ops here)."""

    def start(self, total: int, done: int) -> None:
        """``total`` entries in the space selection, ``done`` of them already in the file."""

    def exporting(self, key: str, index: int, count: int) -> None:
        """Exporting / loading entry ``index`` of ``count`` of the next batch."""

    def measuring(self, batch: int, batches: int, size: int) -> None:
        """Measuring batch ``batch`` (1-based) of ``batches``, with ``size`` entries."""

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
class _Artifacts:
    runtime: Runtime
    cache: Any

    def prefetch(self, entries: Sequence[Entry]) -> None:
        """Export what the cache lacks in grouped, parallel exporter calls (much faster than one by one).

        A failure here is not final: :meth:`load` then exports entry by entry
        and records the error of the entry that fails.
        """
        from .export import ArtifactCache, ExportError, entry_target, export_many

        if not isinstance(self.cache, ArtifactCache):  # a stand-in cache exports nothing
            return
        try:
            export_many(self.cache, [(entry_target(e), self.runtime.format) for e in entries])
        except (ExportError, OSError, RuntimeError):
            pass

    def load(self, entry: Entry) -> Loaded:
        from .export import entry_target

        artifact = self.cache.get(entry_target(entry), self.runtime.format)
        return self.runtime.load(artifact.path, artifact.input_shape)


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
) -> LatencyTable:
    """Profile ``entries`` (default: every distinct entry of ``space``) into the LUT file ``out``.

    Continues an existing file at ``out`` (raises :class:`LutMismatch` when it
    was measured differently). The file is complete when every selected entry
    of the space has statistics. Returns the table as written.
    """
    from .export import ArtifactCache, exporter_versions

    cfg = config or ProtocolConfig()
    hooks = hooks or ProfileHooks()
    out = Path(out)
    artifacts = _Artifacts(runtime, cache if cache is not None else ArtifactCache())
    wanted = list(entries) if entries is not None else space.distinct_entries()
    sentinel = sentinel or default_sentinel(space)

    provenance: dict[str, Any] = {
        "runtime": runtime.settings(),
        "exporter": {"format": runtime.format, "versions": exporter_versions(runtime.format)},
        "host": collect_host(),
        "protocol": cfg.to_dict(),
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
    table.save(out)

    todo = [e for e in wanted if e.key not in table.entries]
    total = len(wanted)
    hooks.start(total, total - len(todo))
    if todo:
        hooks.exporting(f"{len(todo) + 2} artifacts (grouped, parallel)", 0, len(todo) + 2)
        artifacts.prefetch([TRIVIAL_ENTRY, sentinel, *todo])

    if table.overhead_us is None:
        hooks.exporting(TRIVIAL_ENTRY.key, 0, 1)
        trivial = artifacts.load(TRIVIAL_ENTRY)
        try:
            overhead = measure_single(TRIVIAL_ENTRY.key, trivial, cfg)
        finally:
            trivial.close()
        if overhead.summary is not None:
            table.overhead_us = overhead.summary.median
            prov["overhead"] = {"entry": TRIVIAL_ENTRY.key, **overhead.stats()}
        table.save(out)

    batches = _batches(todo, batch_size)
    sentinel_model: Loaded | None = None
    try:
        if batches:
            sentinel_model = artifacts.load(sentinel)
        for number, batch in enumerate(batches, start=1):
            _measure_one_batch(table, out, batch, number, len(batches), sentinel_model, artifacts, cfg, hooks, total)
            session["measured"] = sum(1 for e in wanted if e.key in table.entries) - (total - len(todo))
    finally:
        if sentinel_model is not None:
            sentinel_model.close()
        session["finished_at"] = now_iso()
        session["errors"] = len(table.errors)
        table.complete = not table.missing(space.distinct_entries())
        if table.complete or not [e for e in wanted if e.key not in table.entries]:
            prov["finished_at"] = session["finished_at"]
        table.save(out)
    return table


def _device(runtime: Runtime, provenance: dict[str, Any]) -> dict[str, Any]:
    host = provenance["host"]
    if runtime.name == "adb":
        phone = provenance["runtime"].get("phone", {})
        return {"kind": "android", **phone}
    return {"kind": "local", "hostname": host["hostname"], "cpu_model": host["cpu_model"], "cores": host["cores"]}


def _measure_one_batch(
    table: LatencyTable,
    out: Path,
    batch: list[Entry],
    number: int,
    batches: int,
    sentinel_model: Loaded,
    artifacts: _Artifacts,
    cfg: ProtocolConfig,
    hooks: ProfileHooks,
    total: int,
) -> None:
    prov = table.provenance
    loaded: list[tuple[str, Loaded]] = []
    try:
        for i, entry in enumerate(batch):
            hooks.exporting(entry.key, i, len(batch))
            try:
                loaded.append((entry.key, artifacts.load(entry)))
            except Exception as exc:  # an entry that cannot be exported or loaded is that entry's error
                table.errors[entry.key] = f"load: {type(exc).__name__}: {exc}"
        table.save(out)
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
            table.save(out)
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
        table.save(out)
    finally:
        for _, model in loaded:
            model.close()
