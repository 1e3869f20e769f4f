"""Pure queries over a LUT held in memory: no session, no database.

A :class:`LutSnapshot` is a LUT's entries indexed by key (what
:func:`lut_store.crud.lut_snapshot` loads and the server caches); the
functions here answer from it alone: the table to write as a file, the
accuracy figures it carries, an architecture's LUT sum, two LUTs compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from searchspace import ArchitectureError, Entry, EntryKeyError, SpaceSpec, parse_key

from .errors import Conflict, Invalid
from .formats import Table, TableRow

__all__ = ["LutSnapshot", "accuracy_summary", "architecture_latency", "compare_luts", "snapshot_table"]


@dataclass
class LutSnapshot:
    """A LUT's entries in memory, indexed by original key and by canonical key (µs)."""

    job_id: int
    device: str
    status: str
    complete: bool
    space: SpaceSpec | None
    source_format: str | None
    provenance: dict[str, Any]
    overhead_us: float | None
    rows: list[TableRow]
    accuracy: dict[str, Any] | None = None
    by_key: dict[str, TableRow] = field(default_factory=dict)
    by_entry: dict[str, TableRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows:
            self.by_key[row.key] = row
            if row.entry is not None:
                self.by_entry[row.entry.key] = row

    def find(self, key: str) -> TableRow | None:
        """The row of ``key``: as the source wrote it, or in any hwlut rendering.

        Raises :class:`Invalid` when ``key`` is neither stored nor parseable.
        """
        row = self.by_key.get(key)
        if row is not None:
            return row
        try:
            canonical = parse_key(key).key
        except EntryKeyError as exc:
            raise Invalid("key", str(exc)) from None
        return self.by_entry.get(canonical)

    def latency(self, entry: Entry) -> float | None:
        """The latency (µs) of an entry, ``None`` if the LUT lacks it."""
        row = self.by_entry.get(entry.key)
        return None if row is None else row.latency_us


def _accuracy_provenance(accuracy: Mapping[str, Any] | None) -> dict[str, Any]:
    """An uploaded validation as a LUT file carries it (``provenance.accuracy`` and ``.calibration``).

    The records :func:`profiler.validate.write_calibration` writes; empty without an upload.
    """
    if not accuracy:
        return {}
    report = accuracy.get("report") or {}
    keys = ("networks", "raw", "raw_held_out", "overhead", "calibrated", "calibration", "chosen", "choice", "nested")
    summary = {k: report.get(k) for k in (*keys, "intervals", "strata", "quick")}
    out: dict[str, Any] = {
        "accuracy": {
            **summary,
            "held_out": report.get("held_out"),
            "plan": accuracy.get("plan") or {},
            "measured_at": accuracy.get("finished_at"),
            "noise": (report.get("meta") or {}).get("noise"),
        },
    }
    if isinstance(report.get("calibration"), dict):
        out["calibration"] = {**report["calibration"], "fitted_at": accuracy.get("finished_at")}
    return out


def snapshot_table(snapshot: LutSnapshot) -> Table:
    """A snapshot as a :class:`Table`, ready for :func:`lut_store.formats.write_table`."""
    provenance = dict(snapshot.provenance)
    device = provenance.pop("device", None) or {"name": snapshot.device}
    if snapshot.accuracy:  # an uploaded validation replaces the file's own (a calibration without evidence goes)
        provenance.pop("calibration", None)
        provenance.update(_accuracy_provenance(snapshot.accuracy))
    return Table(
        snapshot.source_format or "hwlut",
        list(snapshot.rows),
        space=snapshot.space,
        device=device,
        provenance=provenance,
        overhead_us=snapshot.overhead_us,
        complete=snapshot.complete,
    )


def accuracy_summary(snapshot: LutSnapshot) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The LUT's (figures summary, calibration): from an uploaded validation, else from its file's provenance."""
    keys = ("networks", "raw", "raw_held_out", "overhead", "calibrated", "held_out")
    if snapshot.accuracy is not None:
        report = snapshot.accuracy.get("report") or {}
        summary = {k: report.get(k) for k in keys}
        return summary, report.get("calibration")
    prov = snapshot.provenance
    acc = prov.get("accuracy") if isinstance(prov.get("accuracy"), dict) else None
    cal = prov.get("calibration") if isinstance(prov.get("calibration"), dict) else None
    return (None if acc is None else {k: acc.get(k) for k in keys}), cal


def architecture_latency(snapshot: LutSnapshot, arch: str) -> dict[str, Any]:
    """The LUT sum (µs) of one architecture, layer by layer, and which entries are missing."""
    if snapshot.space is None:
        raise Conflict("lut", "this LUT has no search space, so it cannot decode an architecture")
    try:
        named = snapshot.space.named_entries_of(arch)
    except ArchitectureError as exc:
        raise Invalid("arch", str(exc)) from None
    layers = []
    for name, entry in named:
        layers.append({"layer": name, "key": entry.key, "latency_us": snapshot.latency(entry)})
    missing = list(dict.fromkeys(layer["key"] for layer in layers if layer["latency_us"] is None))
    total = math.fsum(layer["latency_us"] or 0.0 for layer in layers)
    return {"total_us": total, "layers": layers, "missing": missing, "complete": not missing}


def compare_luts(a: LutSnapshot, b: LutSnapshot) -> dict[str, Any]:
    """Per-entry ratio ``b / a`` over the entries both LUTs have."""
    rows = []
    common: Iterable[str] = [k for k in a.by_entry if k in b.by_entry]
    for key in common:
        la, lb = a.by_entry[key].latency_us, b.by_entry[key].latency_us
        rows.append({"key": key, "a_us": la, "b_us": lb, "ratio": (lb / la) if la > 0 else None})
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None and r["ratio"] > 0]
    geo = math.exp(math.fsum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
    return {
        "entries": rows,
        "geomean_ratio": geo,
        "only_in_a": [k for k in a.by_entry if k not in b.by_entry],
        "only_in_b": [k for k in b.by_entry if k not in a.by_entry],
    }
