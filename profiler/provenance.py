"""Provenance of a LUT: small collectors, one per fact (after pyperf's ``_collect_metadata``).

:func:`collect_host` says where the numbers were taken (CPU model, cores,
affinity mask, frequency governor where readable, OS, Python). What must be
equal before two sessions' measurements may share one LUT
(``CHECKED_FIELDS``) and the one settings check (``mismatches``) are pure
data, in :mod:`searchspace.provenance`: the agent, local profiling and
validation read them there, and the store enforces them too.
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
    "collect_affinity",
    "collect_cpu_model",
    "collect_governor",
    "collect_host",
    "now_iso",
]


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
