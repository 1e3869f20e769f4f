"""Whole networks measured end to end with the LUT's own protocol, and compared with LUT sums.

:func:`measure_network` exports one architecture of a space as a single
artifact (:func:`profiler.export.network_target`, through the artifact
cache), loads it with a runtime and times it with
:func:`profiler.protocol.measure_batch`: warm-up, interleaved passes, a
sentinel, the CI stopping rule. With no sentinel entry the network is its own
sentinel (as :func:`profiler.protocol.measure_single`). Given a LUT it also
prices the network from the table:

``predicted_us``
    the raw LUT sum (:meth:`searchspace.LatencyTable.network_latency`);
``predicted_corrected_us``
    the sum less what the entries paid for the runtime's fixed per-invocation
    overhead beyond the one call a whole network pays:
    ``raw - (n - 1) * overhead_us`` (``n`` entries; None without an overhead);
``error_pct`` / ``error_corrected_pct``
    ``100 * (predicted / measured - 1)``: positive when the LUT overestimates.

:func:`measure_networks` measures several networks in one interleaved batch,
which is what a validation of a LUT needs (a slow spell touches every network
alike). A LUT that lacks entries of a network raises
:class:`searchspace.MissingEntries` before anything is exported or timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from searchspace import Architecture, Entry, LatencyTable, MissingEntries, SpaceSpec
from searchspace.accuracy import overhead_prediction

from .artifacts import cache_or_default, load_artifact
from .export import network_target
from .protocol import EntryResult, PassReport, ProtocolConfig, measure_batch
from .runtimes import Loaded, Runtime

__all__ = [
    "LutSpaceMismatch",
    "NetworkMeasurement",
    "lut_prediction",
    "measure_network",
    "measure_networks",
]

Clock = Any  # Callable[[], int], as in profiler.protocol


class LutSpaceMismatch(ValueError):
    """The LUT describes another space than the network's."""


@dataclass(frozen=True)
class NetworkMeasurement:
    """One whole network's end-to-end latency (µs) and, with a LUT, its prediction and the error."""

    arch: str
    space: str
    resolution: int
    label: str
    runtime: dict[str, Any]
    stats: dict[str, Any]
    sentinel: dict[str, Any]
    wall_s: float
    inference_s: float
    entries: int
    predicted_us: float | None = None
    overhead_us: float | None = None
    lut_runtime: dict[str, Any] | None = field(default=None)

    @property
    def measured_us(self) -> float:
        """The median of the end-to-end samples (µs)."""
        return float(self.stats["median"])

    @property
    def predicted_corrected_us(self) -> float | None:
        """The LUT sum less ``(entries - 1)`` runtime overheads; None without a LUT or an overhead."""
        if self.predicted_us is None or self.overhead_us is None:
            return None
        return overhead_prediction(self.predicted_us, self.entries, self.overhead_us)

    @property
    def error_pct(self) -> float | None:
        """``100 * (predicted / measured - 1)`` for the raw LUT sum; None without a LUT."""
        return _error_pct(self.predicted_us, self.measured_us)

    @property
    def error_corrected_pct(self) -> float | None:
        """The same error for the overhead-corrected sum."""
        return _error_pct(self.predicted_corrected_us, self.measured_us)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: ``measured_us``, ``predicted_us``, ``error_pct`` and everything behind them."""
        return {
            "arch": self.arch,
            "space": self.space,
            "resolution": self.resolution,
            "artifact": self.label,
            "unit": "us",
            "measured_us": self.measured_us,
            "predicted_us": self.predicted_us,
            "error_pct": self.error_pct,
            "overhead_us": self.overhead_us,
            "entries": self.entries,
            "predicted_corrected_us": self.predicted_corrected_us,
            "error_corrected_pct": self.error_corrected_pct,
            "stats": self.stats,
            "runtime": self.runtime,
            "lut_runtime": self.lut_runtime,
            "sentinel": self.sentinel,
            "wall_s": self.wall_s,
            "inference_s": self.inference_s,
        }


def _error_pct(predicted: float | None, measured: float) -> float | None:
    if predicted is None or measured <= 0:
        return None
    return 100.0 * (predicted / measured - 1.0)


def lut_prediction(table: LatencyTable, space: SpaceSpec, arch: Architecture | str) -> float:
    """The raw LUT sum (µs) of ``arch``; checks that the table is of ``space``.

    Raises :class:`LutSpaceMismatch` for another space and
    :class:`searchspace.MissingEntries` (listing every lacking key) for a gap.
    """
    if table.space.spec_hash != space.spec_hash:
        raise LutSpaceMismatch(
            f"the LUT is of space {table.space.name}-{table.space.resolution} "
            f"(hash {table.space.spec_hash[:12]}), the network of {space.name}-{space.resolution} "
            f"(hash {space.spec_hash[:12]})"
        )
    missing = table.missing(space.entries_of(arch))
    if missing:
        raise MissingEntries(list(dict.fromkeys(missing)))
    return table.network_latency(arch)


def measure_networks(
    space: SpaceSpec,
    archs: Sequence[Architecture | str],
    runtime: Runtime,
    config: ProtocolConfig | None = None,
    *,
    cache: Any = None,
    sentinel: Entry | None = None,
    lut: LatencyTable | None = None,
    clock: Clock = time.perf_counter_ns,
    on_pass: Callable[[PassReport], None] | None = None,
) -> list[NetworkMeasurement]:
    """Measure whole networks of ``space`` end to end, interleaved in one batch.

    ``sentinel``: an entry timed in every pass (default: the first network is
    the sentinel). ``cache``: an :class:`profiler.export.ArtifactCache` (or a
    stand-in with ``get(target, fmt)``; default: the user's cache). ``lut``:
    price each network from this table too; it is checked (space, missing
    entries) before anything is exported. ``on_pass``: called after every
    pass (:func:`profiler.protocol.measure_batch`), e.g. to show progress.
    """
    decoded = [space.decode(a) if isinstance(a, str) else space.decode(list(a.ops)) for a in archs]
    if not decoded:
        raise ValueError("measure_networks: no architecture given")
    predictions = [lut_prediction(lut, space, a) if lut is not None else None for a in decoded]
    cache = cache_or_default(cache)
    targets = [network_target(space, a) for a in decoded]
    labels = list(dict.fromkeys(t.label for t in targets))  # the same network twice is measured once

    loaded: dict[str, Loaded] = {}
    sentinel_model: Loaded | None = None
    try:
        for target in targets:
            if target.label not in loaded:
                loaded[target.label] = load_artifact(cache, target, runtime)
        if sentinel is not None:
            sentinel_model = load_artifact(cache, sentinel, runtime)
        reference = sentinel_model if sentinel_model is not None else loaded[labels[0]]
        result = measure_batch(
            [(label, loaded[label]) for label in labels], reference, config, clock=clock, on_pass=on_pass
        )
    finally:
        for model in loaded.values():
            model.close()
        if sentinel_model is not None:
            sentinel_model.close()

    settings = runtime.settings()
    lut_runtime = lut.provenance.get("runtime") if lut is not None else None
    out = []
    for arch, target, predicted in zip(decoded, targets, predictions, strict=True):
        out.append(
            NetworkMeasurement(
                arch=arch.encode(),
                space=space.name,
                resolution=space.resolution,
                label=target.label,
                runtime=settings,
                stats=_stats(result.entries[target.label]),
                sentinel={"key": sentinel.key if sentinel is not None else "self", **result.sentinel_record()},
                wall_s=result.wall_s,
                inference_s=result.inference_s,
                entries=len(space.entries_of(arch)),
                predicted_us=predicted,
                overhead_us=lut.overhead_us if lut is not None else None,
                lut_runtime=lut_runtime,
            )
        )
    return out


def measure_network(
    space: SpaceSpec,
    arch: Architecture | str,
    runtime: Runtime,
    config: ProtocolConfig | None = None,
    *,
    cache: Any = None,
    sentinel: Entry | None = None,
    lut: LatencyTable | None = None,
    clock: Clock = time.perf_counter_ns,
) -> NetworkMeasurement:
    """Measure one whole network end to end (see :func:`measure_networks`)."""
    return measure_networks(space, [arch], runtime, config, cache=cache, sentinel=sentinel, lut=lut, clock=clock)[0]


def _stats(res: EntryResult) -> dict[str, Any]:
    """The entry's LUT-style statistics; its error as :class:`RuntimeError` when the runtime failed."""
    if res.stop_reason == "error" or res.summary is None:
        raise RuntimeError(f"measuring the network failed: {res.error or 'no samples'}")
    return res.stats()
