"""Checked provenance: what must be equal before measurements may share one LUT (after pyperf's ``_metadata``).

A provenance record is a JSON object (``runtime``, ``exporter``, ``host``,
``protocol``...) that the profiler collects (:mod:`profiler.provenance`) and
the store keeps with a job's LUT. :data:`CHECKED_FIELDS` lists the dotted
paths that must match for two sessions' measurements to be merged;
:func:`mismatches` says where two records differ, value by value, and
:func:`job_mismatches` compares a job's earlier uploads with new ones, less
what differs between identical devices sharing a job
(:func:`identical_device_paths`). The one settings check of hwlut: the agent
runs it before measuring, the store where results enter it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CHECKED_FIELDS",
    "checked_view",
    "holds_checked_fields",
    "identical_device_paths",
    "job_mismatches",
    "mismatches",
]

#: Provenance paths (dotted) that must match for measurements to be merged into one LUT.
CHECKED_FIELDS = ("runtime", "exporter.format", "exporter.versions", "host.cpu_model", "host.machine")


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def checked_view(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`CHECKED_FIELDS` of ``provenance``."""
    return {name: _get(provenance, name) for name in CHECKED_FIELDS}


def holds_checked_fields(provenance: Mapping[str, Any]) -> bool:
    """Whether ``provenance`` says anything that :data:`CHECKED_FIELDS` compare."""
    return any(value is not None for value in checked_view(provenance).values())


def _ignored(path: str, ignore: Sequence[str]) -> bool:
    return any(path == name or path.startswith(f"{name}.") for name in ignore)


def _leaves(value: Any, path: str, ignore: Sequence[str], out: dict[str, Any]) -> None:
    """``value`` flattened to ``{dotted path: value}``, ignored paths left out (an emptied dict stays, as ``{}``)."""
    if _ignored(path, ignore):
        return
    if isinstance(value, Mapping):
        kept = {key: inner for key, inner in value.items() if not _ignored(f"{path}.{key}", ignore)}
        for key, inner in kept.items():
            _leaves(inner, f"{path}.{key}", ignore, out)
        if kept:
            return
        value = {}
    out[path] = value


def mismatches(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    fields: Sequence[str] = CHECKED_FIELDS,
    ignore: Sequence[str] = (),
) -> list[str]:
    """Where two provenance records differ in ``fields``, value by value, as ``path: old != new``.

    The one settings check: a LUT file resumed (all :data:`CHECKED_FIELDS`),
    a job's earlier uploads against new ones (:func:`job_mismatches`) and a
    LUT against the runtime that validates it (``fields=("runtime",)``, less
    the cache mode). Nested settings are compared key by key, so the answer
    names the setting (``runtime.threads: 1 != 4``); ``ignore`` leaves out
    dotted paths and everything under them (``runtime.phone.serial``,
    ``host``). A missing value reads as None (older records lack newer keys).
    """
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    for name in fields:
        _leaves(_get(old, name), name, ignore, a)
        _leaves(_get(new, name), name, ignore, b)
    return [f"{p}: {a.get(p)!r} != {b.get(p)!r}" for p in dict.fromkeys([*a, *b]) if a.get(p) != b.get(p)]


def identical_device_paths(provenance: Mapping[str, Any]) -> list[str]:
    """What may differ between identical devices sharing a job: a phone's serial; for adb, the host driving it."""
    ignore = ["runtime.phone.serial"]
    runtime = provenance.get("runtime")
    if isinstance(runtime, Mapping) and runtime.get("runtime") == "adb":
        ignore.append("host")
    return ignore


def job_mismatches(held: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Checked fields in which a job's earlier uploads (``held``) and new measurements (``new``) differ.

    What differs between identical devices sharing a job is not compared
    (:func:`identical_device_paths` of ``new``).
    """
    return mismatches(held, new, ignore=identical_device_paths(new))
