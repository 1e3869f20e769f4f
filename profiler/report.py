"""What a LUT file says, as plain data: its layers × candidates grid and its summary figures.

Pure functions of a :class:`searchspace.LatencyTable` (no runtime, no
clock, no terminal): ``hwlut lut show`` renders them, and anything else (a
dashboard, the agent, a validation report) can reuse them. Latencies stay in
µs here; a renderer converts.

:func:`layer_grid`
    one row per searchable layer: its shape and, per candidate of the space,
    the entry's median (µs), or None where the entry is missing;
:func:`fixed_rows`
    the stem, head, pool and classifier entries;
:func:`lut_summary`
    entries present and missing, errors, runtime and settings, host,
    overhead, CI half-widths (median and max, relative and in µs), stop
    reasons, passes and passes redone, sentinel drift, wall time.
"""

from __future__ import annotations

import collections
import datetime as _dt
import math
import statistics
from typing import Any

from searchspace import LatencyTable
from searchspace.intervals import verdict

__all__ = ["fixed_rows", "layer_grid", "lut_summary"]


def _median(table: LatencyTable, key: str) -> float | None:
    stats = table.entries.get(key)
    if stats is None:
        return 0.0 if key.startswith("zero_") else None  # the zero op costs nothing and is never measured
    return float(stats["median"])


def layer_grid(table: LatencyTable) -> dict[str, Any]:
    """The searchable layers × the space's candidates: ``{"candidates": [...], "layers": [...]}``.

    Each layer row has ``index, stage, cin, cout, h, w, stride`` and
    ``latency_us`` (candidate -> median µs, None when missing, absent when the
    candidate is not allowed at that layer), ``keys`` (candidate -> entry key)
    and ``errors`` (candidate -> message, for entries whose measurement failed).
    """
    space = table.space
    names: dict[str, None] = dict.fromkeys(space.candidates)
    for layer in space.layers:
        names.update(dict.fromkeys(layer.candidate_names))
    rows = []
    for layer in space.layers:
        keys = {name: layer.entry(name).key for name in layer.candidate_names}
        rows.append(
            {
                "index": layer.index,
                "stage": layer.stage,
                "cin": layer.cin,
                "cout": layer.cout,
                "h": layer.h,
                "w": layer.w,
                "stride": layer.stride,
                "latency_us": {name: _median(table, key) for name, key in keys.items()},
                "keys": keys,
                "errors": {name: table.errors[key] for name, key in keys.items() if key in table.errors},
            }
        )
    return {"candidates": list(names), "layers": rows}


def fixed_rows(table: LatencyTable) -> list[dict[str, Any]]:
    """The entries every network contains (stem, head, pool, fc): name, key, median µs or None, error."""
    return [
        {"name": name, "key": entry.key, "latency_us": _median(table, entry.key), "error": table.errors.get(entry.key)}
        for name, entry in table.space.fixed_entries().items()
    ]


def _p90(values: list[float]) -> float | None:
    """The 90th percentile as the nearest rank at or below it (None when empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else None


def _iso_seconds(start: Any, end: Any) -> float | None:
    try:
        return (_dt.datetime.fromisoformat(end) - _dt.datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def _wall_s(prov: dict[str, Any]) -> float | None:
    """Measuring wall time over every session that added to the file (a session's own record first)."""
    total, seen = 0.0, False
    for session in prov.get("sessions") or []:
        if not isinstance(session, dict):
            continue
        wall = session.get("wall_s")
        if wall is None:
            wall = _iso_seconds(session.get("started_at"), session.get("finished_at"))
        if wall is not None:
            total, seen = total + float(wall), True
    return total if seen else None


def lut_summary(table: LatencyTable) -> dict[str, Any]:
    """Summary figures of a LUT (latencies in µs, shares as fractions: 0.01 = 1%).

    Keys: ``space`` (name, resolution, hash), ``complete``, ``entries``
    (present), ``total`` (distinct entries of the space), ``missing`` (count)
    and ``missing_keys``, ``errors`` (key -> message), ``device``, ``runtime``
    (the runtime's settings), ``host`` (CPU model, cores, affinity mask),
    ``overhead_us``, ``ci_rel_median`` / ``ci_rel_p90`` / ``ci_rel_max`` (the CI's largest
    distance from the median over the median), ``ci_half_width_us_median`` /
    ``..._max``, ``stop_reasons`` (reason -> count), ``passes``,
    ``passes_redone``, ``passes_flagged``, ``sentinel_max_abs_drift``,
    ``sessions``, ``wall_s``, ``inference_s`` and ``inference_share`` (None
    where the file does not say), ``cache_eviction_s`` and
    ``cache_eviction_share`` (a ``cold``/``l2`` cache mode's reads before
    timed runs; None otherwise), ``accuracy`` and ``calibration`` (the
    ``provenance.accuracy`` figures and ``provenance.calibration`` record that
    ``hwlut validate --write-calibration`` stores; None when absent),
    ``verdict`` (trusted / rough / not validated, with reasons:
    :func:`searchspace.intervals.verdict` of the accuracy and the LUT's noise),
    ``calm`` (the calm gates: ``count``, ``waited_s`` in all, ``not_calm`` that
    gave up, ``threshold``; None when no gate ran, :mod:`profiler.calm`).
    """
    prov = table.provenance or {}
    space = table.space
    missing = table.missing(space.distinct_entries())
    stats = list(table.entries.values())
    rels = [float(s["ci_rel"]) for s in stats if isinstance(s.get("ci_rel"), (int, float))]
    halves = [float(s["ci_half_width"]) for s in stats if isinstance(s.get("ci_half_width"), (int, float))]
    reasons = collections.Counter(str(s.get("stop_reason") or "unknown") for s in stats)
    sentinel = prov.get("sentinel") if isinstance(prov.get("sentinel"), dict) else {}
    batches = [b for b in sentinel.get("batches") or [] if isinstance(b, dict)]
    host = prov.get("host") if isinstance(prov.get("host"), dict) else {}
    sessions = [s for s in prov.get("sessions") or [] if isinstance(s, dict)]
    inference = [s["inference_s"] for s in sessions if isinstance(s.get("inference_s"), (int, float))]
    wall = _wall_s(prov)
    inference_s = math.fsum(inference) if inference else None
    share = inference_s / wall if inference_s is not None and wall else prov.get("inference_share")
    evicting = [s["cache_eviction_s"] for s in sessions if isinstance(s.get("cache_eviction_s"), (int, float))]
    eviction_s = math.fsum(evicting) if evicting else None
    accuracy = prov.get("accuracy") if isinstance(prov.get("accuracy"), dict) else None
    calm = prov.get("calm") if isinstance(prov.get("calm"), dict) else None
    noise = {
        "passes": prov.get("passes"),
        "passes_redone": prov.get("passes_redone", sentinel.get("passes_redone")),
        "sentinel_max_abs_drift": sentinel.get("max_abs_drift"),
    }
    return {
        "space": {"name": space.name, "resolution": space.resolution, "hash": space.spec_hash},
        "complete": table.complete,
        "unit": "us",
        "entries": len(table.entries),
        "total": len(space.distinct_entries()),
        "missing": len(missing),
        "missing_keys": missing,
        "errors": dict(table.errors),
        "device": table.device,
        "runtime": prov.get("runtime"),
        "exporter": prov.get("exporter"),
        "host": {k: host.get(k) for k in ("cpu_model", "cores", "affinity_mask", "os")} if host else None,
        "overhead_us": table.overhead_us,
        "ci_rel_median": statistics.median(rels) if rels else None,
        "ci_rel_p90": _p90(rels),
        "ci_rel_max": max(rels) if rels else None,
        "ci_half_width_us_median": statistics.median(halves) if halves else None,
        "ci_half_width_us_max": max(halves) if halves else None,
        "stop_reasons": dict(sorted(reasons.items())),
        "passes": prov.get("passes"),
        "passes_redone": prov.get("passes_redone", sentinel.get("passes_redone")),
        "passes_flagged": sum(int(b.get("passes_flagged") or 0) for b in batches) if batches else None,
        "sentinel_key": sentinel.get("key"),
        "sentinel_max_abs_drift": sentinel.get("max_abs_drift"),
        "sessions": len(sessions),
        "started_at": prov.get("started_at"),
        "finished_at": prov.get("finished_at"),
        "accuracy_apart": prov.get("accuracy_apart") if isinstance(prov.get("accuracy_apart"), dict) else None,
        "wall_s": wall,
        "inference_s": inference_s,
        "inference_share": share,
        "cache_eviction_s": eviction_s,
        "cache_eviction_share": eviction_s / wall if eviction_s is not None and wall else None,
        "accuracy": accuracy,
        "calibration": prov.get("calibration") if isinstance(prov.get("calibration"), dict) else None,
        "verdict": verdict(accuracy, noise),
        "calm": {k: calm.get(k) for k in ("count", "waited_s", "not_calm", "threshold")} if calm else None,
    }
