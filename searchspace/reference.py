"""The published phone LUTs of ProxylessNAS and Once-for-All as LUTs of a space, and matching two LUTs.

ProxylessNAS's ``mobile_trim.yaml`` (Pixel 1) and OFA's ``224_lookup_table.yaml``
(Note10) map each op key (:mod:`searchspace.keys`) to ``{count, mean, var}`` or
``{count, mean, std}`` in ms. :func:`read_reference_lut` reads one into a
:class:`~searchspace.LatencyTable` of a space: every key that parses becomes
its entry, with the source's ``mean`` as the latency (both projects sum the
means), and every key that does not map is reported with the reason, never
dropped silently. :func:`match_latencies` pairs the entries of two LUTs (say,
this machine's and the Pixel 1's) by entry, whatever rendering their keys use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entries import Entry, EntryKeyError, parse_key
from .lutfile import LatencyTable, LutFileError
from .spec import SpaceSpec

__all__ = [
    "LatencyMatch",
    "ReferenceImport",
    "load_table",
    "match_latencies",
    "read_reference_lut",
    "reference_latencies",
]


@dataclass
class ReferenceImport:
    """A published table read as a LUT of a space, and what of it did not fit.

    ``unmapped``: key -> why it is no hwlut entry; ``outside``: keys of entries
    that the space does not contain; ``missing``: canonical keys of the space's
    entries that the file lacks.
    """

    table: LatencyTable
    unmapped: dict[str, str] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every key mapped into the space and every entry of the space is there."""
        return not (self.unmapped or self.outside or self.missing)

    def summary(self) -> str:
        """One line: how many keys mapped, and what did not."""
        n = len(self.table.entries)
        return (
            f"{n} entries of {self.table.space.name!r}; {len(self.unmapped)} keys unmapped, "
            f"{len(self.outside)} outside the space, {len(self.missing)} entries of the space missing"
        )


def _records(text: str) -> Mapping[Any, Any]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LutFileError(f"file: not YAML: {exc}") from None
    if not isinstance(doc, Mapping) or not doc:
        raise LutFileError("file: expected a mapping from op keys to {count, mean, var|std} records")
    return doc


def _stats(key: str, rec: Any) -> dict[str, Any]:
    """µs statistics of one record (``median`` holds the source's mean: the statistic its sums use)."""
    if not isinstance(rec, Mapping) or "mean" not in rec:
        raise LutFileError(f"entries[{key!r}]: expected a mapping with 'mean' (ms), got {rec!r}")
    out: dict[str, Any] = {}
    for name in ("mean", "std", "var"):
        value = rec.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise LutFileError(f"entries[{key!r}].{name}: expected a finite number >= 0, got {value!r}")
        out[name] = float(value)
    stats: dict[str, Any] = {"median": out["mean"] * 1000.0, "mean": out["mean"] * 1000.0}
    if "std" in out or "var" in out:
        stats["std"] = (out["std"] if "std" in out else math.sqrt(out["var"])) * 1000.0
    if isinstance(rec.get("count"), int) and not isinstance(rec.get("count"), bool):
        stats["count"] = rec["count"]
    return stats


def reference_latencies(text: str) -> dict[str, float]:
    """A published table's text as ``{key as written: mean latency in µs}``."""
    return {str(key): _stats(str(key), rec)["median"] for key, rec in _records(text).items()}


def read_reference_lut(text: str, space: SpaceSpec, *, source: str | None = None) -> ReferenceImport:
    """Read a ProxylessNAS / OFA table as a LUT of ``space``; :class:`LutFileError` for a malformed file.

    The table is ``complete`` when it holds every entry of the space; keys
    that map to no entry, or to one outside the space, are in the report.
    """
    wanted = {e.key for e in space.distinct_entries()}
    entries: dict[str, dict[str, Any]] = {}
    report = ReferenceImport(LatencyTable(space=space))
    for raw_key, rec in _records(text).items():
        key = str(raw_key)
        stats = _stats(key, rec)
        try:
            entry = parse_key(key)
        except EntryKeyError as exc:
            report.unmapped[key] = str(exc)
            continue
        if entry.key not in wanted:
            report.outside.append(key)
            continue
        entries[entry.key] = {**stats, "source_key": key}
    report.missing = sorted(wanted - set(entries))
    report.table = LatencyTable(
        space=space,
        entries=entries,
        device=None,
        provenance={
            "imported_from": source or "reference table",
            "unit_of_source": "ms",
            "latency_statistic": "mean",
        },
        complete=not report.missing,
    )
    return report


def load_table(path: str | Path, space: SpaceSpec | None = None) -> LatencyTable:
    """An hwlut JSON LUT file, or a ProxylessNAS / OFA YAML table (``.yaml``/``.yml``) read as a LUT of ``space``.

    A YAML table needs ``space``; one with a key that maps to no entry of it
    is refused (:class:`LutFileError` naming the first keys), one that lacks
    entries of it is returned with ``complete`` false.
    """
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        return LatencyTable.load(path)
    if space is None:
        raise LutFileError(f"{path}: a ProxylessNAS / OFA table names no space; give the space (--space)")
    report = read_reference_lut(path.read_text(), space, source=str(path))
    if report.unmapped or report.outside:
        bad = [*report.unmapped, *report.outside]
        raise LutFileError(f"{path}: {report.summary()}: {', '.join(bad[:5])}")
    return report.table


@dataclass(frozen=True)
class MatchedEntry:
    """One entry both LUTs hold: its canonical key and the two latencies (µs)."""

    key: str
    entry: Entry
    left_us: float
    right_us: float


@dataclass
class LatencyMatch:
    """Entries of two LUTs paired by entry; the keys of each that the other lacks."""

    matched: list[MatchedEntry]
    unmatched_left: list[str]
    unmatched_right: list[str]

    @property
    def unmatched(self) -> int:
        """How many entries of either side found no partner."""
        return len(self.unmatched_left) + len(self.unmatched_right)


def _by_entry(latencies: Mapping[str, float] | LatencyTable) -> tuple[dict[Entry, float], list[str]]:
    if isinstance(latencies, LatencyTable):
        latencies = {key: float(stats["median"]) for key, stats in latencies.entries.items()}
    out: dict[Entry, float] = {}
    foreign = []
    for key, value in latencies.items():
        try:
            out[parse_key(key)] = float(value)
        except EntryKeyError:
            foreign.append(key)
    return out, foreign


def match_latencies(
    left: Mapping[str, float] | LatencyTable, right: Mapping[str, float] | LatencyTable
) -> LatencyMatch:
    """Pair two LUTs' latencies (µs) by entry, keys in any rendering (or two :class:`LatencyTable`).

    For comparing a device with the published tables: ``matched`` in the
    left's order, and the keys (as given) that have no partner on the other side.
    """
    a, a_foreign = _by_entry(left)
    b, b_foreign = _by_entry(right)
    matched = [MatchedEntry(e.key, e, a[e], b[e]) for e in a if e in b]
    return LatencyMatch(
        matched=matched,
        unmatched_left=[e.key for e in a if e not in b] + a_foreign,
        unmatched_right=[e.key for e in b if e not in a] + b_foreign,
    )
