"""Validate a LUT against whole networks measured end to end, here, with the LUT's own protocol.

:func:`validation_archs` (:mod:`searchspace.validation`, re-exported here:
the server draws a job's validation networks with it too) draws the
validation networks: the named ones first, then ``n`` distinct architectures
sampled from the LUT's space with a recorded seed — by default stratified over
the LUT-sum range (:func:`searchspace.validation.stratified_archs`), where a
search goes. :func:`validate_lut` measures them in one interleaved batch
(:func:`profiler.network.measure_networks`; the networks always run warm,
as a deployed network does, whatever cache mode the LUT was measured in) and
computes the :class:`searchspace.accuracy.AccuracyReport`: raw LUT sums,
overhead-corrected sums and the calibration cross-validation chose, every
calibrated figure out of fold, with intervals and figures per stratum.
:func:`write_calibration` stores the calibration and the figures in the LUT
file (``provenance.calibration`` and ``provenance.accuracy``), where the
searcher finds them; :func:`replacing` says what that would replace.

Nothing here needs the server: ``hwlut validate --here`` fetches a server's
LUT, calls :func:`validate_lut` and uploads :meth:`ValidationResult.to_dict`.
(Through a server the device's agent measures a job's validation networks
instead, and the server computes the same document;
:func:`report_from_dict` turns its report back into an :class:`AccuracyReport`.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchspace import LatencyTable, SpaceSpec
from searchspace.accuracy import AccuracyReport, Calibration, Figures, NetworkRow, accuracy_report
from searchspace.provenance import mismatches
from searchspace.validation import (
    DEFAULT_NETWORKS,
    DEFAULT_STRATA,
    lut_sum_range,
    stratified_archs,
    validation_archs,
)

from .artifacts import cache_or_default, load_artifact, prefetch_artifacts
from .export import network_target
from .local import default_sentinel
from .network import NetworkMeasurement, measure_networks
from .protocol import TRIVIAL_ENTRY, BatchResult, PassReport, ProtocolConfig, measure_batch
from .provenance import now_iso
from .runtimes import Loaded, Runtime, cache_mode_of, warm_runtime
from .runtimes.coldcache import MODE_SETTINGS

__all__ = [
    "DEFAULT_NETWORKS",
    "InterleavedRun",
    "RuntimeMismatch",
    "ValidationResult",
    "check_runtime",
    "lut_medians",
    "measure_interleaved",
    "prefetch_networks",
    "replacing",
    "report_from_dict",
    "validate_lut",
    "validation_archs",
    "write_calibration",
]


class RuntimeMismatch(ValueError):
    """The runtime given to validate a LUT is not the one (or not set as the one) that measured it."""


def check_runtime(table: LatencyTable, runtime: Runtime) -> None:
    """Raise :class:`RuntimeMismatch` when ``runtime``'s settings differ from those the LUT was measured with.

    The cache mode is not compared (the networks run warm in any case); a LUT
    without a recorded runtime is accepted.
    """
    recorded = table.provenance.get("runtime") or {}
    if all(key in MODE_SETTINGS for key in recorded):
        return
    diff = mismatches(
        {"runtime": recorded},
        {"runtime": runtime.settings()},
        fields=("runtime",),
        ignore=[f"runtime.{key}" for key in MODE_SETTINGS],
    )
    if diff:
        raise RuntimeMismatch("the LUT was measured with other runtime settings (LUT != here); " + "; ".join(diff))


@dataclass(frozen=True)
class ValidationResult:
    """A LUT's validation: how the networks were chosen, their measurements and the accuracy report."""

    report: AccuracyReport
    measurements: tuple[NetworkMeasurement, ...]
    seed: int
    n: int
    named: tuple[str, ...]
    lut_cache_mode: str
    runtime: dict[str, Any]
    finished_at: str = field(default_factory=now_iso)
    draw: str = "uniform"
    strata: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the plan (seed, n, named, draw), the report and the network stats."""
        return {
            "plan": {
                "seed": self.seed,
                "n": self.n,
                "named": list(self.named),
                "draw": self.draw,
                "strata": self.strata,
                "timing": "apart",  # the networks timed after the LUT's build, not in its passes
            },
            "lut_cache_mode": self.lut_cache_mode,
            "runtime": self.runtime,
            "finished_at": self.finished_at,
            "report": self.report.to_dict(),
            "networks": [
                {"arch": m.arch, "artifact": m.label, "stats": m.stats, "sentinel": m.sentinel}
                for m in self.measurements
            ],
        }


def validate_lut(
    table: LatencyTable,
    runtime: Runtime,
    config: ProtocolConfig | None = None,
    *,
    n: int = DEFAULT_NETWORKS,
    seed: int = 0,
    archs: Sequence[str] = (),
    calibration: str | None = "auto",
    draw: str = "stratified",
    strata: int = DEFAULT_STRATA,
    quick: bool = False,
    cache: Any = None,
    check: bool = True,
    measure: Callable[..., list[NetworkMeasurement]] = measure_networks,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> ValidationResult:
    """Measure ``archs`` plus ``n`` seeded networks of the LUT's space end to end and report accuracy.

    ``runtime`` runs the networks (warm; a cold-cache wrapper is unwrapped);
    with ``check`` its settings must be those the LUT was measured with.
    ``draw`` ``stratified`` spreads the networks over the LUT-sum range in
    ``strata`` bins (``uniform``: uniformly random architectures, which span
    a narrow band). ``calibration``: ``auto`` (cross-validation chooses), a
    model name (it or none) or None. ``quick`` marks the report as a quick
    look (the verdict says so). Raises :class:`searchspace.MissingEntries`
    before measuring anything when the LUT lacks an entry of a network.
    ``on_progress(measured, total, share)`` is called after every pass of the
    measurement: networks measured so far, of ``total``, and the share of the
    work done (an unfinished network counted by the part of its time cap it
    used, so a time left from it is pessimistic).
    """
    plain = warm_runtime(runtime)  # networks always run warm
    if check:
        check_runtime(table, plain)
    if draw not in ("stratified", "uniform"):
        raise ValueError(f"draw: unknown {draw!r}; known: stratified, uniform")
    space = table.space
    medians = lut_medians(table)
    try:
        range_us: tuple[float, float] | None = lut_sum_range(space, medians)
    except KeyError:  # an incomplete LUT: no range to stratify over
        range_us = None
    if draw == "stratified" and range_us is not None:
        chosen = stratified_archs(space, medians, n, seed, strata=strata, named=archs)
    else:
        draw = "uniform"
        chosen = validation_archs(space, n, seed, archs)
    if not chosen:
        raise ValueError("validate: no networks (n=0 and no named architecture)")
    for arch in chosen:  # every gap is found before anything is exported
        table.network_latency(arch)
    if measure is measure_networks:
        cache = prefetch_networks(space, chosen, plain.format, cache)
    extra: dict[str, Any] = {}
    if on_progress is not None:
        total, done = len(dict.fromkeys(chosen)), [0]

        def on_pass(report: PassReport) -> None:
            done[0] += len(report.finished)
            on_progress(done[0], total, min(1.0, report.progress / total))

        extra["on_pass"] = on_pass
    measured = measure(space, chosen, plain, config, cache=cache, lut=table, **extra)
    rows = [
        NetworkRow(arch=m.arch, measured_us=m.measured_us, raw_us=float(m.predicted_us), entries=m.entries)
        for m in measured
    ]
    noise = {
        "passes": max((int(m.sentinel.get("passes") or 0) for m in measured), default=0),
        "passes_redone": max((int(m.sentinel.get("passes_redone") or 0) for m in measured), default=0),
        "sentinel_max_abs_drift": max((float(m.sentinel.get("max_abs_drift") or 0) for m in measured), default=0.0),
    }
    report = accuracy_report(
        rows,
        overhead_us=table.overhead_us,
        kind=calibration,
        split_seed=seed,
        range_us=range_us,
        strata=strata,
        meta={
            "space": space.name,
            "resolution": space.resolution,
            "lut_cache_mode": cache_mode_of(table.provenance.get("runtime")),
            "draw": draw,
            "range_us": list(range_us) if range_us else None,
            "quick": quick,
            "noise": noise,
        },
    )
    return ValidationResult(
        report=report,
        measurements=tuple(measured),
        seed=seed,
        n=n,
        named=tuple(archs),
        lut_cache_mode=cache_mode_of(table.provenance.get("runtime")),
        runtime=plain.settings(),
        draw=draw,
        strata=strata if draw == "stratified" else None,
    )


def lut_medians(table: LatencyTable) -> dict[str, float]:
    """Entry key -> median latency (µs) of every entry the LUT has."""
    return {key: float(stats["median"]) for key, stats in table.entries.items() if "median" in stats}


@dataclass(frozen=True)
class InterleavedRun:
    """Entries and whole networks timed in one interleaved batch: the networks' rows and the batch."""

    rows: tuple[NetworkRow, ...]
    overhead_us: float | None
    batch: BatchResult


def measure_interleaved(
    space: SpaceSpec,
    archs: Sequence[str],
    runtime: Runtime,
    config: ProtocolConfig | None = None,
    *,
    entry_runtime: Runtime | None = None,
    cache: Any = None,
) -> InterleavedRun:
    """Time every entry the ``archs`` use, the networks themselves and the trivial model in one batch.

    One :func:`profiler.protocol.measure_batch` call shuffles them into the same
    passes (as a profiling job with validation networks does, batch by
    batch), so a drift of the machine touches the LUT's entries and the
    networks alike and cannot pass for a LUT error. ``entry_runtime`` (default
    ``runtime``) measures the entries and the trivial model, e.g. a cache-mode
    wrapper (:mod:`profiler.runtimes.coldcache`); the networks always run on
    ``runtime``, warm. Each row's raw sum is the sum of its entries' medians.
    """
    cfg = config or ProtocolConfig()
    cache = cache_or_default(cache)
    entry_rt = entry_runtime or runtime
    entries = list(dict.fromkeys(e for a in archs for e in space.entries_of(a)))

    loaded: list[tuple[str, Loaded]] = []
    sentinel: Loaded | None = None
    try:
        loaded += [(e.key, load_artifact(cache, e, entry_rt)) for e in [*entries, TRIVIAL_ENTRY]]
        loaded += [(f"net:{i}", load_artifact(cache, network_target(space, a), runtime)) for i, a in enumerate(archs)]
        sentinel = load_artifact(cache, default_sentinel(space), runtime)
        batch = measure_batch(loaded, sentinel, cfg)
    finally:
        for _, model in loaded:
            model.close()
        if sentinel is not None:
            sentinel.close()
    median = {k: r.summary.median for k, r in batch.entries.items() if r.summary is not None}
    failed = sorted(k for k, r in batch.entries.items() if r.summary is None and k != TRIVIAL_ENTRY.key)
    if failed:
        raise RuntimeError(f"measure_interleaved: no statistics for {', '.join(failed[:5])}")
    rows = []
    for i, arch in enumerate(archs):
        parts = space.entries_of(arch)
        rows.append(NetworkRow(arch, median[f"net:{i}"], math.fsum(median[e.key] for e in parts), len(parts)))
    return InterleavedRun(tuple(rows), median.get(TRIVIAL_ENTRY.key), batch)


def prefetch_networks(space: SpaceSpec, archs: Sequence[str], fmt: str, cache: Any = None) -> Any:
    """Export the networks the cache lacks in parallel (:func:`profiler.export.export_many`); returns the cache.

    A stand-in cache is returned untouched; a failed parallel export is left
    to the one-by-one export of the measurement, which names the culprit.
    """
    cache = cache_or_default(cache)
    prefetch_artifacts(cache, [network_target(space, a) for a in archs], fmt)
    return cache


def _said(prov: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The file's calibration and accuracy report in a few words (None where it has none)."""
    cal, acc = prov.get("calibration"), prov.get("accuracy")
    cal_s = acc_s = None
    if isinstance(cal, Mapping) and "slope" in cal:
        cal_s = (
            f"calibration {cal.get('kind', 'linear')} {float(cal['slope']):.4f} x sum "
            f"{float(cal.get('intercept_us', 0.0)):+.1f} µs (fitted on {len(cal.get('fitted_on') or [])} networks"
            + (f", {cal['fitted_at']}" if cal.get("fitted_at") else "")
            + ")"
        )
    if isinstance(acc, Mapping):
        acc_s = f"accuracy report of {acc.get('networks')} networks" + (
            f" measured {acc['measured_at']}" if acc.get("measured_at") else ""
        )
    return cal_s, acc_s


def replacing(table: LatencyTable, result: ValidationResult) -> tuple[list[str], list[str]]:
    """What :func:`write_calibration` would replace in ``table``: ``(said, losses)``, both in words.

    ``said`` names each record replaced or removed; ``losses`` the ones that
    would lose evidence (a report of more networks replaced by one of fewer,
    a calibration removed because cross-validation chose none): a caller
    writes those only when the user asked for it.
    """
    cal_s, acc_s = _said(table.provenance)
    report = result.report
    said, losses = [], []
    if cal_s:
        if report.calibration is None:
            said.append(
                f"removed {cal_s}: cross-validation chose the raw sum ({(report.selection or {}).get('reason')})"
            )
            losses.append(f"the {cal_s} would be removed")
        else:
            said.append(f"replaced {cal_s}")
    if acc_s:
        said.append(f"replaced {acc_s}")
        old_n = (table.provenance.get("accuracy") or {}).get("networks")
        if isinstance(old_n, int) and old_n > len(report.rows):
            losses.append(f"the {acc_s} would be replaced by one of {len(report.rows)} networks")
    return said, losses


def write_calibration(table: LatencyTable, result: ValidationResult, path: str | Path | None = None) -> LatencyTable:
    """Store the served calibration (``provenance.calibration``) and the figures (``provenance.accuracy``).

    Writes the file at ``path`` when given. When cross-validation chose no
    calibration (``none``), any old calibration is removed: the new evidence
    says it does not beat the raw sum (:func:`replacing` says so first).
    """
    report = result.report
    prov = dict(table.provenance)
    if report.calibration is not None:
        prov["calibration"] = {
            **report.calibration.to_dict(),
            "chosen_by": (report.selection or {}).get("method"),
            "fitted_at": result.finished_at,
        }
    else:
        prov.pop("calibration", None)
    prov["accuracy"] = {
        **report.summary(),
        "plan": result.to_dict()["plan"],
        "measured_at": result.finished_at,
        "noise": report.meta.get("noise"),
    }
    table.provenance = prov
    if path is not None:
        table.save(path)
    return table


def report_from_dict(doc: Mapping[str, Any]) -> AccuracyReport:
    """An :class:`AccuracyReport` rebuilt from its ``to_dict()`` (a report a server stored), e.g. to plot it.

    Raises ``KeyError`` / ``TypeError`` / ``ValueError`` for a document that
    is no such report (the report's own checks apply: a calibration fitted on
    a held-out network is refused).
    """

    def figures_of(value: Any) -> Figures | None:
        return None if value is None else Figures(**value)

    split = doc.get("split") or {}
    calibration = doc.get("calibration")
    return AccuracyReport(
        rows=tuple(
            NetworkRow(str(r["arch"]), float(r["measured_us"]), float(r["raw_us"]), int(r["entries"]))
            for r in doc["rows"]
        ),
        raw=Figures(**doc["raw"]),
        raw_held_out=figures_of(doc.get("raw_held_out")),
        overhead_us=doc.get("overhead_per_invocation_us"),
        overhead=figures_of(doc.get("overhead")),
        calibration=None if calibration is None else Calibration.from_dict(calibration),
        calibrated=figures_of(doc.get("calibrated")),
        fit_indices=tuple(int(i) for i in split.get("fit", ())),
        held_out_indices=tuple(int(i) for i in split.get("held_out", ())),
        split_seed=split.get("seed"),
        meta=dict(doc.get("meta") or {}),
        selection=doc.get("selection"),
        nested=figures_of(doc.get("nested")),
        intervals=dict(doc.get("intervals") or {}),
        strata=doc.get("strata"),
    )
