"""The searcher's promise, measured: the architecture a search chose, timed end to end beside the LUT's sentinel.

:func:`verify_search` reads a search result (``search_result.json``), checks
that it was searched against this LUT's space, exports the chosen network
(the argmax, or one of the samples), measures it with the LUT's protocol on
the given runtime with the LUT's own sentinel entry timed in the same passes,
and compares the measured latency with the LUT's raw and calibrated
predictions and, when the search had one, its target latency.

Drift: the LUT recorded its sentinel's reference latency per measuring batch
(``provenance.sentinel.batches[].reference_us``); :func:`sentinel_drift`
compares the sentinel now with their median. When the machine is now, say,
10% slower than when the LUT was built, the measured latency divided by 1.10
is the **drift-adjusted** latency, shown next to the raw comparison.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from searchspace import Entry, LatencyTable, parse_key
from searchspace.accuracy import calibrated_prediction, error_pct

from .artifacts import cache_or_default, load_artifact
from .calm import wait_until_calm
from .local import default_sentinel
from .network import NetworkMeasurement, measure_network, measure_networks
from .protocol import ProtocolConfig
from .provenance import now_iso
from .runtimes import Runtime

__all__ = [
    "TARGET_TOLERANCE_PCT",
    "SearchMismatch",
    "lut_sentinel",
    "measure_apart",
    "pick_architecture",
    "sentinel_drift",
    "verify_search",
]

#: A ``--target-latency`` search keeps its promise when measured within this of the target (%).
TARGET_TOLERANCE_PCT = 5.0


class SearchMismatch(ValueError):
    """The search result is of another space than the LUT, or names no such architecture."""


def lut_sentinel(table: LatencyTable) -> tuple[Entry, float | None]:
    """The LUT's sentinel entry (the space's default when the file names none) and its reference latency (µs).

    The reference is the median of the batches' ``reference_us``; None when the file recorded none.
    """
    sentinel = table.provenance.get("sentinel") if isinstance(table.provenance.get("sentinel"), Mapping) else {}
    try:
        entry = parse_key(str(sentinel["key"])) if sentinel.get("key") else default_sentinel(table.space)
    except (KeyError, ValueError):
        entry = default_sentinel(table.space)
    refs = [
        float(b["reference_us"])
        for b in sentinel.get("batches") or []
        if isinstance(b, Mapping) and isinstance(b.get("reference_us"), (int, float)) and b["reference_us"] > 0
    ]
    return entry, statistics.median(refs) if refs else None


def sentinel_drift(now_us: float | None, lut_us: float | None) -> float | None:
    """How much slower (positive) or faster the machine is now than when the LUT was built: ``now / lut - 1``."""
    if now_us is None or lut_us is None or not (now_us > 0 and lut_us > 0):
        return None
    return now_us / lut_us - 1.0


def pick_architecture(result: Mapping[str, Any], which: str = "argmax") -> str:
    """The architecture ``which`` of a search result.

    ``argmax``, ``target`` (a target-latency search's likeliest architecture
    predicted at the target, :mod:`searcher.target`), ``sample:N``, or
    ``auto``: ``target`` where the result has one, else ``argmax``.
    """
    if which == "auto":
        which = "target" if isinstance(result.get("target"), Mapping) else "argmax"
    if which in ("argmax", "target"):
        item = result.get(which)
    elif which.startswith("sample:") and which[7:].isdigit():
        samples = result.get("samples") or []
        index = int(which[7:])
        item = samples[index] if index < len(samples) else None
    else:
        raise SearchMismatch(f"which: {which!r} is none of auto, argmax, target, sample:N")
    if not isinstance(item, Mapping) or not isinstance(item.get("arch"), str):
        raise SearchMismatch(f"the search result has no {which} architecture")
    return item["arch"]


def verify_search(
    result: Mapping[str, Any],
    table: LatencyTable,
    runtime: Runtime,
    config: ProtocolConfig | None = None,
    *,
    which: str = "auto",
    cache: Any = None,
    calm_wait_s: float = 0.0,
    calm_threshold: float = 0.05,
    measure: Any = measure_network,
) -> dict[str, Any]:
    """Measure the searched architecture end to end and compare it with what the LUT and the search promised.

    Returns a JSON-ready dict: ``arch``, ``measured_us``, ``predicted_us``
    (raw sum), ``calibrated_us`` (None without a served calibration),
    ``error_pct`` / ``calibrated_error_pct``, ``sentinel`` (its key, now,
    at the LUT's build, ``drift``), ``drift_adjusted_us`` and its errors,
    ``target_us`` with ``target_error_pct`` and ``target_kept`` (within
    ±:data:`TARGET_TOLERANCE_PCT`), ``calm`` (the calm gate's record when
    ``calm_wait_s`` > 0: the sentinel timed until steady within
    ``calm_threshold``, at most that long, before measuring) and the
    measurement's record.
    """
    lut_info = result.get("lut") if isinstance(result.get("lut"), Mapping) else {}
    searched_hash = lut_info.get("space_hash")
    if searched_hash and searched_hash != table.space.spec_hash:
        raise SearchMismatch(
            f"the search ran on space hash {str(searched_hash)[:12]}, the LUT is of "
            f"{table.space.name}-{table.space.resolution} (hash {table.space.spec_hash[:12]})"
        )
    if which == "auto":
        which = "target" if isinstance(result.get("target"), Mapping) else "argmax"
    arch = pick_architecture(result, which)
    space = table.space
    raw = table.network_latency(arch)  # MissingEntries before anything is exported
    calibrated = calibrated_prediction(raw, table.provenance.get("calibration"))
    sentinel, lut_ref = lut_sentinel(table)
    calm = None
    if calm_wait_s > 0:
        cache = cache_or_default(cache)
        probe = load_artifact(cache, sentinel, runtime)
        try:
            calm = wait_until_calm(probe, threshold=calm_threshold, max_wait_s=calm_wait_s).to_dict()
        finally:
            probe.close()
    m: NetworkMeasurement = measure(space, arch, runtime, config, cache=cache, sentinel=sentinel, lut=table)
    measured = m.measured_us
    now_ref = m.sentinel.get("reference_us")
    drift = sentinel_drift(now_ref, lut_ref)
    adjusted = measured / (1.0 + drift) if drift is not None else None
    target_ms = (result.get("config") or {}).get("target_ms")
    target = float(target_ms) * 1000.0 if isinstance(target_ms, (int, float)) else None

    def err(pred: float | None, meas: float | None) -> float | None:
        return None if pred is None or meas is None else error_pct(pred, meas)

    target_err = None if target is None else error_pct(measured, target)
    return {
        "arch": arch,
        "which": which,
        "space": space.name,
        "resolution": space.resolution,
        "unit": "us",
        "measured_us": measured,
        "predicted_us": raw,
        "error_pct": err(raw, measured),
        "calibrated_us": calibrated,
        "calibrated_error_pct": err(calibrated, measured),
        "calibration": table.provenance.get("calibration"),
        "sentinel": {"key": sentinel.key, "now_us": now_ref, "lut_us": lut_ref, "drift": drift},
        "drift_adjusted_us": adjusted,
        "drift_adjusted_error_pct": err(raw, adjusted),
        "drift_adjusted_calibrated_error_pct": err(calibrated, adjusted),
        "target_us": target,
        "target_error_pct": target_err,
        "target_kept": None if target_err is None else abs(target_err) <= TARGET_TOLERANCE_PCT,
        "calm": calm,
        "search_predicted_us": (result.get(which) or {}).get("latency_us") if which in ("argmax", "target") else None,
        "measurement": m.to_dict(),
    }


def measure_apart(
    table: LatencyTable,
    runtime: Runtime,
    archs: Mapping[str, str],
    config: ProtocolConfig | None = None,
    *,
    cache: Any = None,
    measure: Any = measure_networks,
) -> dict[str, Any]:
    """Networks measured apart from the LUT's build (later, on their own), beside the LUT's sentinel.

    ``archs`` maps a name (e.g. ``fbnet-a``) to an architecture string. The
    networks are timed in one batch with the LUT's sentinel, so the record
    says how far the machine drifted since the build; each row holds the
    measured latency, the raw and calibrated predictions' errors and the
    calibrated error once the drift is taken out. The JSON-ready record is
    what a LUT file keeps as ``provenance.accuracy_apart``.
    """
    names = list(archs)
    sentinel, lut_ref = lut_sentinel(table)
    measured = measure(
        table.space, [archs[n] for n in names], runtime, config, cache=cache, sentinel=sentinel, lut=table
    )
    rows = []
    drift = now_ref = None
    for name, m in zip(names, measured, strict=True):
        now_ref = m.sentinel.get("reference_us")
        drift = sentinel_drift(now_ref, lut_ref)
        raw = table.network_latency(m.arch)
        calibrated = calibrated_prediction(raw, table.provenance.get("calibration"))
        adjusted = m.measured_us / (1.0 + drift) if drift is not None else None
        rows.append(
            {
                "name": name,
                "arch": m.arch,
                "measured_us": m.measured_us,
                "raw_us": raw,
                "raw_error_pct": error_pct(raw, m.measured_us),
                "calibrated_us": calibrated,
                "calibrated_error_pct": None if calibrated is None else error_pct(calibrated, m.measured_us),
                "drift_adjusted_calibrated_error_pct": (
                    None if calibrated is None or adjusted is None else error_pct(calibrated, adjusted)
                ),
            }
        )
    return {
        "measured_at": now_iso(),
        "lut_finished_at": table.provenance.get("finished_at"),
        "sentinel": {"key": sentinel.key, "lut_us": lut_ref, "now_us": now_ref, "drift": drift},
        "networks": rows,
    }
