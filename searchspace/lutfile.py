"""hwlut's own LUT file: a self-describing JSON latency lookup table.

The one file format that the profiler writes, the store imports and serves,
and the searcher reads. Readers ignore keys they do not know. History:

version 1
    ``{"format": "hwlut-lut", "version": 1, "unit": "us", "space": SPEC,
    "space_hash": HEX, "device": {...} | null, "provenance": {...},
    "overhead_us": float | null, "complete": bool,
    "entries": {CANONICAL_KEY: STATS}}``. ``STATS`` holds at least
    ``median`` (µs); the profiler adds ``mean, std, min, p10, p90, count,
    ci_low, ci_high, stop_reason``.

version 1, additions (older readers ignore them; older files lack them)
    ``STATS`` from the profiler also carries ``max, ci_half_width, ci_rel``
    (the CI's largest distance from the median over the median),
    ``confidence`` (0.95), ``passes`` (accepted passes it was timed in) and
    ``time_s`` (its measuring time); ``stop_reason`` is ``"ci"`` (precision
    reached), ``"time_cap"`` or absent. A CI bound that a tiny sample cannot
    give is null. Top level: ``"errors": {CANONICAL_KEY: MESSAGE}`` for
    entries whose measurement failed (absent from ``entries``). The
    profiler's provenance is described in :mod:`profiler.local`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entries import Entry, parse_key
from .spec import Architecture, SpaceSpec

__all__ = ["LUT_FORMAT", "LUT_VERSION", "LatencyTable", "LutFileError", "MissingEntries"]

LUT_FORMAT = "hwlut-lut"
LUT_VERSION = 1


class LutFileError(ValueError):
    """A LUT file that cannot be read; the message names the field."""


class MissingEntries(KeyError):
    """Entries that a network needs and the LUT lacks (``.keys`` lists them)."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys

    def __str__(self) -> str:
        shown = ", ".join(self.keys[:10]) + (" …" if len(self.keys) > 10 else "")
        return f"the LUT lacks {len(self.keys)} entr{'y' if len(self.keys) == 1 else 'ies'}: {shown}"


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@dataclass
class LatencyTable:
    """A latency lookup table of one space on one device (latencies in µs)."""

    space: SpaceSpec
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    overhead_us: float | None = None
    complete: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    # -- lookups --------------------------------------------------------------
    def latency(self, entry: Entry | str) -> float:
        """The median latency (µs) of one entry, by entry or key in any rendering (0 for the free zero op)."""
        entry = entry if isinstance(entry, Entry) else parse_key(entry)
        if entry.is_free:
            return 0.0
        key = entry.key
        try:
            return float(self.entries[key]["median"])
        except KeyError:
            raise MissingEntries([key]) from None

    def missing(self, entries: list[Entry] | None = None) -> list[str]:
        """Keys of ``entries`` (default: every entry of the space) that the table lacks."""
        wanted = entries if entries is not None else self.space.distinct_entries()
        return [e.key for e in wanted if e.key not in self.entries]

    def network_latency(self, arch: Architecture | str) -> float:
        """The raw LUT sum (µs) of one whole network; :class:`MissingEntries` if any lacks."""
        entries = self.space.entries_of(arch)
        missing = self.missing(entries)
        if missing:
            raise MissingEntries(list(dict.fromkeys(missing)))
        return math.fsum(float(self.entries[e.key]["median"]) for e in entries)

    # -- files ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The file's JSON document."""
        return {
            "format": LUT_FORMAT,
            "version": LUT_VERSION,
            "unit": "us",
            "space": self.space.to_dict(),
            "space_hash": self.space.spec_hash,
            "device": self.device,
            "provenance": self.provenance,
            "overhead_us": self.overhead_us,
            "complete": self.complete,
            "entries": self.entries,
            "errors": self.errors,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LatencyTable:
        """Read a file's document, checking format, unit, and every key and median."""
        if not isinstance(doc, Mapping) or doc.get("format") != LUT_FORMAT:
            raise LutFileError(f"format: not an hwlut LUT (expected format {LUT_FORMAT!r})")
        if doc.get("version", 0) > LUT_VERSION:
            raise LutFileError(f"version: file version {doc.get('version')} is newer than this hwlut reads")
        if doc.get("unit", "us") != "us":
            raise LutFileError(f"unit: expected 'us', got {doc.get('unit')!r}")
        space = SpaceSpec.from_dict(doc["space"])
        entries: dict[str, dict[str, Any]] = {}
        for key, stats in (doc.get("entries") or {}).items():
            try:
                canonical = parse_key(key).key
            except ValueError as exc:
                raise LutFileError(f"entries: {exc}") from None
            median = stats.get("median") if isinstance(stats, Mapping) else None
            if not isinstance(median, (int, float)) or not math.isfinite(median) or median < 0:
                raise LutFileError(f"entries[{key!r}].median: expected a finite latency >= 0 µs, got {median!r}")
            entries[canonical] = dict(stats)
        return cls(
            space=space,
            entries=entries,
            device=doc.get("device"),
            provenance=dict(doc.get("provenance") or {}),
            overhead_us=doc.get("overhead_us"),
            complete=bool(doc.get("complete", False)),
            errors={str(k): str(v) for k, v in (doc.get("errors") or {}).items()},
        )

    def save(self, path: str | Path) -> None:
        """Write the file atomically (a reader never sees half of it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # a LUT is no secret: the user's umask, not mkstemp's 0600
            with os.fdopen(fd, "w") as fh:
                json.dump(self.to_dict(), fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read an hwlut LUT file."""
        try:
            doc = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise LutFileError(f"{path}: not JSON: {exc}") from None
        return cls.from_dict(doc)
