"""A bounded re-measure of a LUT's worst entries (``hwlut profile --recheck N``).

:func:`worst_entries` ranks a LUT's entries by how little their figure can be
trusted: the relative half-width of their median's CI (``ci_rel``), or, for an
entry measured with sentinel-relative timing, how far its pass's sentinel had
drifted (``|sentinel_factor - 1|``), whichever is larger. The file does not
record which batch an entry was in, so a batch's drift reaches an entry only
through that factor; with the default single batch the batch drift would rank
every entry alike anyway.

:func:`recheck_entries` measures the ``n`` worst again, in one interleaved
batch with the LUT's sentinel (after an optional calm gate), with the LUT's own
protocol (its time cap lowered so the batch stays within ``time_s``), and
keeps for each entry **the measurement with the lower** :func:`untrusted_score`
(the narrower CI, or the smaller drift; the new one on a tie), the same score
that chose it. Why not always the newer: the entries chosen are those least
trusted, and a re-measure that came out noisier (the machine still busy) is
no better a figure; pooling the two sample sets would mix two states of the
machine in one median. The stats kept are one measurement's, never a blend.
``provenance["recheck"]`` keeps both sides of every entry (``before_*`` /
``after_*``, ``kept``) and the sentinel's speed at the recheck beside the
build's (a slower machine then reads as a higher sentinel reference).
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

from searchspace import LatencyTable, parse_key

from .artifacts import cache_or_default, load_artifact
from .calm import CalmSettings, run_gate
from .local import default_sentinel
from .protocol import ProtocolConfig, measure_batch
from .provenance import now_iso
from .runtimes import Loaded, Runtime

__all__ = ["recheck_entries", "untrusted_score", "worst_entries"]


def untrusted_score(stats: dict[str, Any]) -> float:
    """How little an entry's figure can be trusted: its relative CI half-width or its sentinel drift, the larger."""
    ci = float(stats.get("ci_rel") or 0.0)
    factor = stats.get("sentinel_factor")
    drift = abs(float(factor) - 1.0) if factor is not None else 0.0
    return max(ci, drift)


def worst_entries(table: LatencyTable, n: int) -> list[str]:
    """The keys of the ``n`` entries with the highest :func:`untrusted_score` (ties: the file's order)."""
    if n < 0:
        raise ValueError(f"recheck: expected n >= 0 entries, got {n}")
    ranked = sorted(table.entries, key=lambda k: -untrusted_score(table.entries[k]))
    return ranked[:n]


def _protocol(table: LatencyTable, n: int, time_s: float | None) -> ProtocolConfig:
    """The LUT's protocol, its per-entry time cap lowered so ``n`` entries stay within ``time_s`` seconds."""
    saved = table.provenance.get("protocol") or {}
    fields = {f.name for f in dataclasses.fields(ProtocolConfig)}
    cfg = ProtocolConfig(**{k: v for k, v in saved.items() if k in fields})
    if time_s is not None and n:
        cfg = dataclasses.replace(cfg, time_cap_s=min(cfg.time_cap_s, time_s / n))
    return cfg


def _ci(stats: dict[str, Any]) -> list[float]:
    return [round(float(stats["ci_low"]), 3), round(float(stats["ci_high"]), 3)]


def recheck_entries(
    table: LatencyTable,
    out: str | Path,
    runtime: Runtime,
    n: int,
    *,
    time_s: float | None = None,
    calm: CalmSettings | None = None,
    cache: Any = None,
) -> dict[str, Any]:
    """Measure the ``n`` worst entries of ``table`` again, keep the more trusted figure of each, save to ``out``.

    Returns the ``provenance["recheck"]`` record (``entries``: key, before /
    after median, CI and score, ``kept``). ``time_s`` bounds the batch's measuring
    time (per entry ``time_s / n``); ``calm`` gates it first (its build wait).
    """
    if time_s is not None and time_s <= 0:
        raise ValueError(f"recheck: expected time_s > 0 seconds, got {time_s}")
    keys = worst_entries(table, n)
    prov = table.provenance
    record: dict[str, Any] = {
        "at": now_iso(),
        "asked": n,
        "rule": "the more trusted kept (narrower CI, less drift)",
        "entries": [],
    }
    if not keys:
        return record
    cfg = _protocol(table, len(keys), time_s)
    cache = cache_or_default(cache)
    sentinel_key = (prov.get("sentinel") or {}).get("key")
    sentinel_entry = parse_key(sentinel_key) if sentinel_key else default_sentinel(table.space)
    loaded: list[tuple[str, Loaded]] = []
    sentinel = load_artifact(cache, sentinel_entry, runtime)
    try:
        for key in keys:
            loaded.append((key, load_artifact(cache, parse_key(key), runtime)))
        gate = run_gate(sentinel, calm, prov, first=True, where="recheck")
        result = measure_batch(loaded, sentinel, cfg)
    finally:
        sentinel.close()
        for _, model in loaded:
            model.close()
    for key in keys:
        res = result.entries[key]
        before = table.entries[key]
        row: dict[str, Any] = {"key": key, "before_median": before["median"], "before_ci": _ci(before)}
        if res.summary is None:
            row.update(after_median=None, after_ci=None, kept="before", error=res.error)
        else:
            after = res.stats()
            row.update(after_median=after["median"], after_ci=_ci(after))
            row.update(before_score=round(untrusted_score(before), 5), after_score=round(untrusted_score(after), 5))
            row["kept"] = "after" if row["after_score"] <= row["before_score"] else "before"
            if row["kept"] == "after":
                table.entries[key] = after
        record["entries"].append(row)
    batches = (prov.get("sentinel") or {}).get("batches") or []
    refs = [b["reference_us"] for b in batches if b.get("reference_us")]
    record.update(
        sentinel_reference_us=round(result.sentinel_reference_us, 3),
        build_sentinel_reference_us=round(statistics.median(refs), 3) if refs else None,
        passes=result.passes,
        passes_redone=result.passes_redone,
        max_abs_drift=result.sentinel_record()["max_abs_drift"],
        calm=None if gate is None else gate.calm,
        time_cap_s=cfg.time_cap_s,
    )
    prov["recheck"] = {**record, "runs": int((prov.get("recheck") or {}).get("runs", 0)) + 1}
    table.save(out)
    return prov["recheck"]
