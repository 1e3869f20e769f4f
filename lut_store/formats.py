"""LUT file formats: read any of them into a :class:`Table`, write a table back.

================  =============================================================
format            what it is
================  =============================================================
``hwlut``         hwlut's own JSON LUT (:class:`searchspace.LatencyTable`), µs.
                  Entries that are no hwlut op travel in an extra top-level
                  ``foreign_entries`` mapping (readers ignore unknown keys).
``csv``           one row per entry: ``key, entry_key``, the nine fields,
                  ``latency_us`` and the statistics as ``*_us`` columns.
``hwnasbench``    YAML/JSON mapping from an HW-NAS-Bench key
                  (``ConvBlock_H56_W56_Cin24_Cout32_exp6_kernel5_stride2_group1``)
                  to a latency in **ms**.
``proxyless``     ProxylessNAS YAML: ``{key: {count, mean, var}}``, ms (var in ms²).
``ofa``           Once-for-All YAML: ``{key: {count, mean, std}}``, ms. OFA writes
                  ``expand`` as the *middle channel count* and adds ``-se:S-hs:H``.
================  =============================================================

Foreign tables keep their own keys. Every row has ``key`` as the source wrote
it and ``entry``, the hwlut :class:`~searchspace.Entry` it maps to (the key
grammar is :mod:`searchspace.keys`; every key of the Pixel 1 and Note10
tables maps), or ``None`` when it maps to none. A row that maps is queryable by any key
rendering; one that does not is queryable by its original key. A foreign row
also keeps its source record verbatim (``source``), so exporting a table in
its own format gives back every key and every value unchanged; its latency in
hwlut is the source's ``mean`` × 1000 µs (both projects sum the means).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from searchspace import Entry, EntryKeyError, LatencyTable, LutFileError, SpaceSpec, parse_key
from searchspace.fields import LATENCY_FIELDS, STAT_FIELDS, FieldError
from searchspace.fields import check_latency as _check_latency
from searchspace.keys import HWNASBENCH_PREFIXES, PROXYLESS_NAMES

from .safeyaml import load_yaml as _load_yaml

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "FormatError",
    "Table",
    "TableRow",
    "detect_format",
    "read_table",
    "write_table",
]

FORMATS = ("hwlut", "csv", "hwnasbench", "proxyless", "ofa")
ENTRY_FIELDS = ("op", "cin", "cout", "h", "w", "stride", "kernel", "expansion", "groups")
CSV_COLUMNS = (
    "key",
    "entry_key",
    *ENTRY_FIELDS,
    "latency_us",
    *(f"{name}_us" for name in LATENCY_FIELDS),
    "count",
    "stop_reason",
)


class FormatError(ValueError):
    """A LUT file that cannot be read or written in a format; the message names the field."""


@dataclass(frozen=True)
class TableRow:
    """One entry of a table: its key as written, its hwlut entry (or None), its latency in µs."""

    key: str
    entry: Entry | None
    latency_us: float
    stats: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None


@dataclass
class Table:
    """A LUT in memory, whatever file it came from (latencies in µs)."""

    format: str
    rows: list[TableRow]
    space: SpaceSpec | None = None
    device: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    overhead_us: float | None = None
    complete: bool = True

    def unmapped(self) -> list[str]:
        """Keys of the rows that are no hwlut entry."""
        return [row.key for row in self.rows if row.entry is None]


def check_latency(value: Any, where: str) -> float:
    """:func:`searchspace.fields.check_latency`, refusing with a :class:`FormatError` naming ``where``."""
    try:
        return _check_latency(value, where)
    except FieldError as exc:
        raise FormatError(str(exc)) from None


def _count(value: Any, where: str) -> int:
    """A sample count: a whole number >= 1 (a float like ``3.0`` from a CSV passes), else :class:`FormatError`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        return STAT_FIELDS["count"].validate(value, where)
    except FieldError as exc:
        raise FormatError(str(exc)) from None


# -- detection ----------------------------------------------------------------
_HWNAS_PREFIXES = HWNASBENCH_PREFIXES


def detect_format(text: str, filename: str = "") -> str:
    """Guess the format of a file's text (``filename``'s suffix helps for CSV)."""
    stripped = text.lstrip()
    if filename.lower().endswith(".csv") or stripped.startswith("key,"):
        return "csv"
    try:
        doc = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise FormatError(f"file: neither CSV nor YAML/JSON: {exc}") from None
    if isinstance(doc, Mapping) and doc.get("format") == "hwlut-lut":
        return "hwlut"
    if not isinstance(doc, Mapping) or not doc:
        raise FormatError("file: expected a mapping of keys to latencies")
    keys = [str(k) for k in doc]
    if all(k.startswith(_HWNAS_PREFIXES) for k in keys):
        return "hwnasbench"
    if any("-se:" in k or "-hs:" in k for k in keys):
        return "ofa"
    records = [v for v in doc.values() if isinstance(v, Mapping)]
    if records and all("std" in r and "var" not in r for r in records):
        return "ofa"
    return "proxyless"


# -- reading --------------------------------------------------------------------
def read_table(text: str, fmt: str | None = None, *, filename: str = "") -> Table:
    """Read a LUT file's text in ``fmt`` (guessed when ``None``)."""
    fmt = fmt or detect_format(text, filename)
    if fmt == "hwlut":
        return _read_hwlut(text)
    if fmt == "csv":
        return _read_csv(text)
    if fmt not in FORMATS:
        raise FormatError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    try:
        doc = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise FormatError(f"file: not YAML/JSON: {exc}") from None
    if not isinstance(doc, Mapping):
        raise FormatError("file: expected a mapping of keys to latencies")
    if fmt == "hwnasbench":
        return _read_hwnasbench(doc)
    return _read_cai(doc, fmt)


def _read_hwlut(text: str) -> Table:
    try:
        doc = json.loads(text)
        lut = LatencyTable.from_dict(doc)
    except (json.JSONDecodeError, LutFileError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"hwlut LUT: {exc}") from None
    except ValueError as exc:  # a bad space spec
        raise FormatError(f"space: {exc}") from None
    rows = []
    for key, stats in lut.entries.items():
        rows.append(TableRow(key, parse_key(key), check_latency(stats["median"], f"entries[{key!r}].median"), stats))
    for key, rec in (doc.get("foreign_entries") or {}).items():
        if not isinstance(rec, Mapping):
            raise FormatError(f"foreign_entries[{key!r}]: expected a mapping")
        latency = check_latency(rec.get("latency_us"), f"foreign_entries[{key!r}].latency_us")
        rows.append(TableRow(str(key), None, latency, dict(rec.get("stats") or {}), rec.get("source")))
    return Table(
        "hwlut",
        rows,
        space=lut.space,
        device=lut.device,
        provenance=lut.provenance,
        overhead_us=lut.overhead_us,
        complete=lut.complete,
    )


def _number(text: str, where: str) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise FormatError(f"{where}: expected a number, got {text!r}") from None


def _read_csv(text: str) -> Table:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "key" not in reader.fieldnames:
        raise FormatError("csv: the header must name a 'key' column")
    if "latency_us" not in reader.fieldnames and "median_us" not in reader.fieldnames:
        raise FormatError("csv: the header must name a 'latency_us' or 'median_us' column")
    rows = []
    for line, rec in enumerate(reader, start=2):
        where = f"csv line {line}"
        key = (rec.get("key") or "").strip()
        if not key:
            raise FormatError(f"{where}: key: empty")
        stats: dict[str, Any] = {}
        for name in LATENCY_FIELDS:
            value = _number(rec.get(f"{name}_us") or "", f"{where}: {name}_us")
            if value is not None:
                stats[name] = check_latency(value, f"{where}: {name}_us")
        count = _number(rec.get("count") or "", f"{where}: count")
        if count is not None:
            stats["count"] = _count(count, f"{where}: count")
        if rec.get("stop_reason"):
            stats["stop_reason"] = rec["stop_reason"]
        latency = _number(rec.get("latency_us") or "", f"{where}: latency_us")
        latency = stats.get("median") if latency is None else latency
        latency = check_latency(latency, f"{where}: latency_us")
        if "entry_key" in reader.fieldnames:  # an empty entry_key marks a foreign op
            entry = _entry_or_none(rec["entry_key"]) if rec.get("entry_key") else None
            if rec.get("entry_key") and entry is None:
                raise FormatError(f"{where}: entry_key: {rec['entry_key']!r} is not an hwlut key")
        else:
            try:
                entry = parse_key(key)
            except EntryKeyError as exc:
                raise FormatError(f"{where}: key: {exc} (mark a foreign op with an empty entry_key column)") from None
        rows.append(TableRow(key, entry, latency, stats))
    return Table("csv", rows)


def _entry_or_none(key: str) -> Entry | None:
    try:
        return parse_key(key)
    except EntryKeyError:
        return None


def _read_hwnasbench(doc: Mapping[Any, Any]) -> Table:
    rows = []
    for key, value in doc.items():
        key = str(key)
        try:
            entry = parse_key(key)
        except EntryKeyError as exc:
            raise FormatError(f"entries: {exc}") from None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise FormatError(f"entries[{key!r}]: expected a latency in ms, got {value!r}")
        us = check_latency(value * 1000.0, f"entries[{key!r}] (ms, times 1000)")  # the cap is in µs
        rows.append(TableRow(key, entry, us, {"median": us}, {"value": value}))
    return Table("hwnasbench", rows, provenance={"unit_of_source": "ms"})


#: A key that starts with an op of the ProxylessNAS / OFA grammar (:data:`searchspace.keys.PROXYLESS_NAMES`)
#: is refused when it does not parse, instead of being kept as a foreign row under a misspelt name.
_OFA_OP_PREFIX = re.compile(rf"^({'|'.join(map(re.escape, PROXYLESS_NAMES))})-")


def ofa_entry(key: str) -> Entry | None:
    """The hwlut entry of an OFA key (grammar: :mod:`searchspace.keys`), or ``None`` for a key of another op.

    A key of one of the grammar's ops that does not parse (a field missing, 0 channels) is a
    :class:`FormatError` naming the key and what is wrong.
    """
    try:
        return parse_key(key)
    except EntryKeyError as exc:
        if _OFA_OP_PREFIX.match(key):
            raise FormatError(f"entries[{key!r}]: {exc}") from None
        return None


def _read_cai(doc: Mapping[Any, Any], dialect: str) -> Table:
    spread = "std" if dialect == "ofa" else "var"
    rows = []
    for key, rec in doc.items():
        key = str(key)
        if not isinstance(rec, Mapping) or "mean" not in rec:
            raise FormatError(f"entries[{key!r}]: expected a mapping with 'mean' (ms), got {rec!r}")
        mean_ms = check_latency(rec["mean"], f"entries[{key!r}].mean")
        stats: dict[str, Any] = {"mean": mean_ms * 1000.0}
        if "std" in rec:
            stats["std"] = check_latency(rec["std"], f"entries[{key!r}].std") * 1000.0
        elif "var" in rec:
            stats["std"] = math.sqrt(check_latency(rec["var"], f"entries[{key!r}].var")) * 1000.0
        if "count" in rec:
            stats["count"] = _count(rec["count"], f"entries[{key!r}].count")
        entry = ofa_entry(key) if dialect == "ofa" else _entry_or_none(key)
        rows.append(TableRow(key, entry, stats["mean"], stats, dict(rec)))
    return Table(dialect, rows, provenance={"unit_of_source": "ms", "latency_statistic": "mean", "spread": spread})


# -- writing --------------------------------------------------------------------
def write_table(table: Table, fmt: str) -> tuple[str, list[str]]:
    """The file text of ``table`` in ``fmt``, and the keys that ``fmt`` cannot hold (left out)."""
    if fmt == "hwlut":
        return _write_hwlut(table), []
    if fmt == "csv":
        return _write_csv(table), []
    if fmt == "hwnasbench":
        return _write_hwnasbench(table)
    if fmt in ("proxyless", "ofa"):
        return _write_cai(table, fmt), []
    raise FormatError(f"format: unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def hwlut_document(table: Table) -> dict[str, Any]:
    """The hwlut LUT document of a table (needs the table's space)."""
    if table.space is None:
        raise FormatError(
            "space: this LUT has no search space (a foreign table imported without --space); "
            "export it as csv or in its own format"
        )
    entries: dict[str, dict[str, Any]] = {}
    foreign: dict[str, dict[str, Any]] = {}
    for row in table.rows:
        if row.entry is None:
            foreign[row.key] = {"latency_us": row.latency_us, "stats": row.stats, "source": row.source}
        else:
            entries[row.entry.key] = {**row.stats, "median": row.stats.get("median", row.latency_us)}
    lut = LatencyTable(
        space=table.space,
        entries=entries,
        device=table.device,
        provenance=table.provenance,
        overhead_us=table.overhead_us,
        complete=table.complete,
    )
    doc = lut.to_dict()
    if foreign:
        doc["foreign_entries"] = foreign
    return doc


def _write_hwlut(table: Table) -> str:
    return json.dumps(hwlut_document(table), indent=1)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _write_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in table.rows:
        fields = row.entry.fields() if row.entry else {}
        writer.writerow(
            [
                row.key,
                row.entry.key if row.entry else "",
                *(_csv_value(fields.get(name)) for name in ENTRY_FIELDS),
                _csv_value(row.latency_us),
                *(_csv_value(row.stats.get(name)) for name in LATENCY_FIELDS),
                _csv_value(row.stats.get("count")),
                _csv_value(row.stats.get("stop_reason")),
            ]
        )
    return out.getvalue()


def _write_hwnasbench(table: Table) -> tuple[str, list[str]]:
    doc: dict[str, Any] = {}
    left_out = []
    for row in table.rows:
        if table.format == "hwnasbench" and row.source is not None:
            doc[row.key] = row.source["value"]
            continue
        try:
            key = row.entry.hwnasbench_key() if row.entry else None
        except EntryKeyError:
            key = None
        if key is None:
            left_out.append(row.key)
        else:
            doc[key] = row.latency_us / 1000.0
    return yaml.safe_dump(doc, sort_keys=False), left_out


def _write_cai(table: Table, dialect: str) -> str:
    doc: dict[str, Any] = {}
    for row in table.rows:
        if table.format == dialect and row.source is not None:
            doc[row.key] = row.source
            continue
        if row.entry is None:
            key = row.key
        else:
            key = row.entry.proxyless_key()  # OFA's flags and middle channels are the mb3 ops' own
        rec: dict[str, Any] = {}
        if "count" in row.stats:
            rec["count"] = row.stats["count"]
        rec["mean"] = row.latency_us / 1000.0
        if "std" in row.stats:
            std_ms = row.stats["std"] / 1000.0
            rec["std" if dialect == "ofa" else "var"] = std_ms if dialect == "ofa" else std_ms**2
        doc[key] = rec
    return yaml.safe_dump(doc, sort_keys=False)
