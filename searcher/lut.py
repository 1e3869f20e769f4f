"""Where a search's latencies come from, and the LUT as one tensor.

Two sources give the same :class:`~searchspace.LatencyTable`:

``--lut FILE``
    an hwlut JSON LUT file (:func:`load_lut_file`).
``--server URL --device NAME [--job ID|latest]``
    the LUT document served at ``GET {URL}/v1/devices/{NAME}/luts/{JOB}``,
    fetched through the shared client :mod:`lutclient`
    (:func:`fetch_server_lut`, the one place that speaks HTTP).

Each source also yields a :class:`LutSource` record (device, job, content
hash) that the search writes into its result, so a result always says which
table it was optimised against.

:class:`LatencyModel` turns a table into a ``(layers, candidates)`` tensor
plus the fixed entries (stem, head, pool, classifier) once per job; the
expected latency of a mixture ``m`` is then ``(m * table).sum() + fixed`` —
one tensor operation per step, no dictionary look-ups.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import torch

from searchspace import Architecture, LatencyTable, MissingEntries, SpaceSpec
from searchspace.accuracy import calibrated_prediction, overhead_prediction
from searchspace.costs import PROXY_OVERHEAD_US, PROXY_US_PER_MMAC, entry_macs, proxy_latency_us
from searchspace.lutfile import LutFileError
from searchspace.reference import load_table

__all__ = [
    "LatencyModel",
    "LutSource",
    "LutSourceError",
    "calibrated_latency",
    "check_complete",
    "entry_macs",
    "fetch_server_lut",
    "load_lut_file",
    "lut_content_hash",
    "synthetic_table",
]


class LutSourceError(RuntimeError):
    """A LUT that could not be obtained (no file, server error, not a LUT)."""


@dataclass(frozen=True)
class LutSource:
    """Which LUT a search used: where it came from, for which device, its content hash."""

    kind: str  # "file" or "server"
    location: str  # the path, or the URL fetched
    device: str | None
    job: str | None
    content_hash: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @property
    def label(self) -> str:
        """A short human name: the device, else the file name."""
        return self.device or Path(self.location).stem


def lut_content_hash(table: LatencyTable) -> str:
    """SHA-256 of the table's canonical JSON document (key order and whitespace ignored)."""
    canonical = json.dumps(table.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _device_name(device: Any) -> str | None:
    if isinstance(device, Mapping):
        name = device.get("name")
        return str(name) if name is not None else None
    return str(device) if device is not None else None


def load_lut_file(path: str | Path, space: SpaceSpec | None = None) -> tuple[LatencyTable, LutSource]:
    """Read an hwlut JSON LUT file, or a ProxylessNAS / OFA YAML table as a LUT of ``space``."""
    path = Path(path)
    if not path.is_file():
        raise LutSourceError(f"{path}: no such LUT file")
    try:
        table = load_table(path, space)
    except LutFileError as exc:
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise
        raise LutSourceError(str(exc)) from None
    job = table.provenance.get("job")
    source = LutSource(
        kind="file",
        location=str(path),
        device=_device_name(table.device),
        job=None if job is None else str(job),
        content_hash=lut_content_hash(table),
    )
    return table, source


def fetch_server_lut(
    server: str,
    device: str,
    job: str = "latest",
    *,
    token: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> tuple[LatencyTable, LutSource]:
    """Fetch one device's LUT from an hwlut server through the shared client (:mod:`lutclient`).

    ``GET {server}/v1/devices/{device}/luts/{job}`` (``job``: an id or
    ``latest``, the newest complete LUT) answers the hwlut LUT document and,
    in its ``X-Hwlut-Lut`` header, the job actually served. ``transport``
    swaps the HTTP transport (``httpx.MockTransport`` in tests).
    """
    from lutclient import HwlutClient, HwlutError

    url = f"{server.rstrip('/')}/v1/devices/{device}/luts/{job}"
    try:
        with HwlutClient(server, token=token, transport=transport) as client:
            served_job, table = client.lut_and_id(device, job)
    except HwlutError as exc:
        raise LutSourceError(f"GET {url}: {exc}") from None
    except (ValueError, KeyError) as exc:
        raise LutSourceError(f"GET {url}: not an hwlut LUT document: {exc}") from None
    source = LutSource(
        kind="server",
        location=url,
        device=_device_name(table.device) or device,
        job=str(served_job),
        content_hash=lut_content_hash(table),
    )
    return table, source


def check_complete(table: LatencyTable, space: SpaceSpec) -> None:
    """Raise :class:`~searchspace.MissingEntries` listing every entry of ``space`` the table lacks."""
    missing = table.missing(space.distinct_entries())
    if missing:
        raise MissingEntries(missing)


def calibrated_latency(table: LatencyTable, space: SpaceSpec, arch: Architecture | str) -> float | None:
    """The calibrated whole-network latency (µs), or ``None`` where the LUT carries no calibration.

    The hook for calibration data. Used, in order:

    1. ``provenance["calibration"] = {"slope": a, "intercept_us": b}`` (a fit of
       end-to-end measurements against LUT sums): ``a * raw + b``;
    2. ``overhead_us`` (the runtime's fixed per-invocation cost, paid by every
       entry in the LUT but once by a whole network): ``raw - (n - 1) * overhead``.
    """
    raw = table.network_latency(arch)
    calibrated = calibrated_prediction(raw, table.provenance.get("calibration"))
    if calibrated is not None:
        return calibrated
    if table.overhead_us is not None and math.isfinite(table.overhead_us):
        return overhead_prediction(raw, len(space.entries_of(arch)), float(table.overhead_us))
    return None


class LatencyModel(torch.nn.Module):
    """A LUT as tensors: ``table[i, k]`` is the latency of candidate ``k`` at layer ``i``.

    Latencies are kept in *units* of ``unit_ms`` milliseconds (see
    :mod:`searcher.loss` for why the unit matters). Padding (a layer with fewer
    candidates than the widest) holds 0 and is masked out by the super net.
    """

    table: torch.Tensor
    mask: torch.Tensor
    fixed: torch.Tensor

    def __init__(self, table: LatencyTable, space: SpaceSpec, *, unit_ms: float = 1.0) -> None:
        super().__init__()
        check_complete(table, space)
        kmax = max(len(layer.candidates) for layer in space.layers)
        values = torch.zeros(len(space.layers), kmax, dtype=torch.float64)
        mask = torch.zeros(len(space.layers), kmax, dtype=torch.bool)
        for layer in space.layers:
            for k, cand in enumerate(layer.candidates):
                values[layer.index, k] = table.latency(layer.entry(cand))
                mask[layer.index, k] = True
        fixed_us = math.fsum(table.latency(e) for e in space.fixed_entries().values())
        self.unit_ms = float(unit_ms)
        self.space = space
        scale = 1.0 / (1000.0 * self.unit_ms)
        self.register_buffer("table", (values * scale).float())
        self.register_buffer("mask", mask)
        self.register_buffer("fixed", torch.tensor(fixed_us * scale, dtype=torch.float32))
        self.table_us = values
        self.fixed_us = fixed_us

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """Expected latency (in units) of the mixture ``m`` of shape ``(layers, candidates)``."""
        return (m * self.table.to(m.dtype)).sum() + self.fixed.to(m.dtype)

    def bounds_us(self) -> tuple[float, float]:
        """The smallest and largest whole-network latency (µs) in the space."""
        big = torch.finfo(torch.float64).max
        lo = self.table_us.masked_fill(~self.mask, big).min(dim=1).values.sum().item()
        hi = self.table_us.masked_fill(~self.mask, -big).max(dim=1).values.sum().item()
        return lo + self.fixed_us, hi + self.fixed_us

    def arch_latency_us(self, indices: list[int]) -> float:
        """The raw LUT sum (µs) of the architecture picking candidate ``indices[i]`` at layer ``i``."""
        return math.fsum(self.table_us[i, k].item() for i, k in enumerate(indices)) + self.fixed_us


def synthetic_table(
    space: SpaceSpec,
    *,
    device: str = "synthetic",
    us_per_mmac: float = PROXY_US_PER_MMAC,
    overhead_us: float = PROXY_OVERHEAD_US,
    jitter: float = 0.1,
    seed: int = 0,
) -> LatencyTable:
    """A made-up, complete LUT of ``space``: ``overhead + us_per_mmac * MMACs``, times seeded jitter.

    For demos, tests and benchmarks of the search; its provenance says it is
    synthetic. Two seeds or two ``us_per_mmac`` give two "devices".
    """
    import random

    rng = random.Random(seed)
    entries = {}
    for entry in space.distinct_entries():
        base = proxy_latency_us(entry, overhead_us=overhead_us, us_per_mmac=us_per_mmac)
        median = base * (1.0 + jitter * (2 * rng.random() - 1))
        entries[entry.key] = {"median": median, "count": 1}
    return LatencyTable(
        space=space,
        entries=entries,
        device={"name": device},
        provenance={"synthetic": True, "us_per_mmac": us_per_mmac, "overhead_us": overhead_us, "seed": seed},
        complete=True,
    )
