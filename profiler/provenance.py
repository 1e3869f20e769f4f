"""Provenance of a LUT: small collectors, one per fact (after pyperf's ``_collect_metadata``).

:func:`collect_host` says where the numbers were taken (CPU model, cores,
affinity mask, frequency governor where readable, OS, Python);
:data:`CHECKED_FIELDS` lists what must be equal before two sessions'
measurements may share one LUT, and :func:`mismatches` (the profiler's one
settings check) says where two records differ.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKED_FIELDS",
    "checked_view",
    "collect_affinity",
    "collect_cpu_model",
    "collect_governor",
    "collect_host",
    "mismatches",
    "now_iso",
]

#: Provenance paths (dotted) that must match for measurements to be merged into one LUT.
CHECKED_FIELDS = ("runtime", "exporter.format", "exporter.versions", "host.cpu_model", "host.machine")


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def collect_cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def collect_affinity() -> list[int] | None:
    """The CPUs this process may run on, or None where the OS does not say."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _mask(cpus: list[int] | None) -> str | None:
    if cpus is None:
        return None
    return hex(sum(1 << c for c in cpus))


def collect_governor(cpus: list[int] | None = None) -> dict[str, str] | None:
    """The cpufreq scaling governor per CPU (``{"0": "performance"}``), or None where unreadable."""
    out: dict[str, str] = {}
    for cpu in cpus if cpus is not None else range(os.cpu_count() or 1):
        try:
            out[str(cpu)] = Path(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor").read_text().strip()
        except OSError:
            continue
    return out or None


def collect_host() -> dict[str, Any]:
    """Facts about this machine and interpreter that decide or explain timings."""
    cpus = collect_affinity()
    try:
        hwlut_version = metadata.version("hwlut")
    except metadata.PackageNotFoundError:
        hwlut_version = "unknown"
    return {
        "hostname": socket.gethostname(),
        "cpu_model": collect_cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "affinity": cpus,
        "affinity_mask": _mask(cpus),
        "governor": collect_governor(cpus),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "hwlut": hwlut_version,
    }


def _get(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def checked_view(provenance: dict[str, Any]) -> dict[str, Any]:
    """The :data:`CHECKED_FIELDS` of ``provenance``."""
    return {name: _get(provenance, name) for name in CHECKED_FIELDS}


def _ignored(path: str, ignore: Sequence[str]) -> bool:
    return any(path == name or path.startswith(f"{name}.") for name in ignore)


def _leaves(value: Any, path: str, ignore: Sequence[str], out: dict[str, Any]) -> None:
    """``value`` flattened to ``{dotted path: value}``, ignored paths left out (an emptied dict stays, as ``{}``)."""
    if _ignored(path, ignore):
        return
    if isinstance(value, dict):
        kept = {key: inner for key, inner in value.items() if not _ignored(f"{path}.{key}", ignore)}
        for key, inner in kept.items():
            _leaves(inner, f"{path}.{key}", ignore, out)
        if kept:
            return
        value = {}
    out[path] = value


def mismatches(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    fields: Sequence[str] = CHECKED_FIELDS,
    ignore: Sequence[str] = (),
) -> list[str]:
    """Where two provenance records differ in ``fields``, value by value, as ``path: old != new``.

    The one settings check of the profiler: a LUT file resumed (all
    :data:`CHECKED_FIELDS`), a job's earlier uploads against an agent's
    settings (less what differs between identical devices) and a LUT
    against the runtime that validates it (``fields=("runtime",)``, less
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
