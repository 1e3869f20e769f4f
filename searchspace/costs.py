"""Analytic costs of entries (pure Python): multiply-accumulates, and a latency proxy made of them.

:func:`entry_macs` counts an entry's multiply-accumulates at batch 1 (BN and
ReLU not counted). :func:`proxy_medians` turns them into a made-up LUT
(``overhead + us_per_mmac * MMACs`` per entry, no jitter): what a draw of
validation networks stratifies over before any entry is measured (a server
job's validation networks are drawn when the job is created).
"""

from __future__ import annotations

from .entries import MB3_OPS, Entry
from .spec import SpaceSpec

__all__ = ["PROXY_OVERHEAD_US", "PROXY_US_PER_MMAC", "entry_macs", "proxy_latency_us", "proxy_medians"]

#: The proxy's per-entry overhead (µs) and cost per million multiply-accumulates (µs).
PROXY_OVERHEAD_US = 5.0
PROXY_US_PER_MMAC = 2.0


def entry_macs(entry: Entry) -> int:
    """Multiply-accumulates of one entry at batch 1 (analytic; BN and ReLU not counted)."""
    oh, ow = entry.out_h, entry.out_w
    if entry.op == "tbs":
        mid = entry.cin * entry.expansion
        expand = entry.h * entry.w * entry.cin * mid // entry.groups
        depthwise = oh * ow * mid * entry.kernel**2
        project = oh * ow * mid * entry.cout // entry.groups
        return expand + depthwise + project
    if entry.op in ("mb", *MB3_OPS):  # no expand conv when mid == cin; SE's two 1x1 convs on 1x1
        mid = entry.mid_channels
        expand = 0 if mid == entry.cin else entry.h * entry.w * entry.cin * mid
        se = 2 * mid * max(8, (mid // 4 + 4) // 8 * 8) if "se" in entry.op else 0
        return expand + oh * ow * mid * (entry.kernel**2 + entry.cout) + se
    if entry.op in ("skip", "zero"):
        return 0 if entry.is_identity or entry.is_free else oh * ow * entry.cin * entry.cout
    if entry.op == "conv":
        return oh * ow * entry.cin * entry.cout * entry.kernel**2 // entry.groups
    if entry.op == "pool":
        return entry.h * entry.w * entry.cin
    return entry.cin * entry.cout * entry.h * entry.w


def proxy_latency_us(
    entry: Entry, *, overhead_us: float = PROXY_OVERHEAD_US, us_per_mmac: float = PROXY_US_PER_MMAC
) -> float:
    """The proxy latency (µs) of one entry: 0 for an identity or a free entry, else overhead plus MACs."""
    if entry.is_identity or entry.is_free:
        return 0.0
    return overhead_us + us_per_mmac * entry_macs(entry) / 1e6


def proxy_medians(space: SpaceSpec) -> dict[str, float]:
    """Entry key -> proxy latency (µs) of every distinct entry of ``space`` (:func:`proxy_latency_us`)."""
    return {e.key: proxy_latency_us(e) for e in space.distinct_entries()}
