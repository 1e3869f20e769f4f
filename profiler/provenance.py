"""Provenance of a LUT: small collectors, one per fact (after pyperf's ``_collect_metadata``).

:func:`collect_host` says where the numbers were taken (CPU model, cores,
affinity mask, frequency governor where readable, OS, Python);
:data:`CHECKED_FIELDS` lists what must be equal before two sessions'
measurements may share one LUT.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
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


def mismatches(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Checked fields whose values differ between two provenance records, as ``field: old != new``."""
    a, b = checked_view(old), checked_view(new)
    return [f"{name}: {a[name]!r} != {b[name]!r}" for name in CHECKED_FIELDS if a[name] != b[name]]
