"""Validation networks of a space: which whole networks validate a LUT, and how a job names them.

Pure Python (no torch), so the server can draw the networks of a profiling
job's validation and the device agent, the CLI and the local validation
draw the very same ones: :func:`validation_archs` is deterministic in
``(space, n, seed, named)``. :func:`network_item_key` is the work-item key of
a validation network in a job (unique per architecture, at most 44 characters).

:func:`stratified_archs` draws networks where a search goes: spread evenly
over the space's LUT-sum range, fastest to slowest (:func:`lut_sum_range`),
by sampling each layer's candidate with a temperature toward fast or slow
blocks, with a recorded seed; deterministic in ``(table, n, seed, strata, named)``.
:func:`plan_networks` is a job's draw: stratified over the MAC-based proxy LUT
(:func:`searchspace.costs.proxy_medians`), since no entry is measured when a
job is created, or uniform.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence

from .spec import Architecture, SpaceSpec

__all__ = [
    "DEFAULT_NETWORKS",
    "DEFAULT_STRATA",
    "DRAWS",
    "MAX_VALIDATION_NETWORKS",
    "MAX_VALIDATION_SEED",
    "NETWORK_KEY_PREFIX",
    "lut_sum_range",
    "network_item_key",
    "plan_networks",
    "stratified_archs",
    "validation_archs",
]

#: Validation networks drawn when none are asked for.
DEFAULT_NETWORKS = 30
#: The most validation networks one job (or one request) may hold.
MAX_VALIDATION_NETWORKS = 1000
#: The largest seed of a draw (and of the fit/held-out split): 32 bits.
MAX_VALIDATION_SEED = 2**32 - 1
#: How validation networks may be drawn.
DRAWS = ("stratified", "uniform")
#: Work-item keys of validation networks start with this (an entry key never does).
NETWORK_KEY_PREFIX = "net:"


def validation_archs(
    space: SpaceSpec, n: int = DEFAULT_NETWORKS, seed: int = 0, named: Sequence[str] = ()
) -> list[str]:
    """The named architectures (checked against ``space``), then ``n`` distinct ones drawn with ``seed``.

    The same ``(space, n, seed, named)`` always gives the same list; no
    architecture appears twice. A space with fewer than ``n`` further
    architectures gives them all. Raises :class:`searchspace.ArchitectureError`
    for a named architecture the space cannot decode.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = list(dict.fromkeys(space.decode(a).encode() for a in named))
    seen = set(out)
    rng = random.Random(seed)
    wanted = len(out) + min(n, max(space.num_architectures - len(out), 0))
    attempts = 0
    while len(out) < wanted and attempts < 100 * (n + 1):
        arch = space.sample(rng).encode()
        attempts += 1
        if arch not in seen:
            seen.add(arch)
            out.append(arch)
    return out


def network_item_key(arch: Architecture | str) -> str:
    """The work-item key of a validation network: ``net:`` and the SHA-1 of its encoded architecture."""
    text = arch.encode() if isinstance(arch, Architecture) else ",".join(p.strip() for p in arch.split(","))
    return NETWORK_KEY_PREFIX + hashlib.sha1(text.encode()).hexdigest()


#: Strata of the LUT-sum range a stratified draw spreads its networks over.
DEFAULT_STRATA = 5
#: How strongly the most extreme temperatures lean toward the fastest or slowest block (per z-score).
_MAX_LEAN = 12.0


def _layer_latencies(space: SpaceSpec, medians: Mapping[str, float]) -> list[list[tuple[str, float]]]:
    return [[(name, float(medians[layer.entry(name).key])) for name in layer.candidate_names] for layer in space.layers]


def lut_sum_range(space: SpaceSpec, medians: Mapping[str, float]) -> tuple[float, float]:
    """The fastest and slowest LUT sums (µs) of any network of ``space``: per layer its fastest / slowest block.

    ``medians`` maps entry keys to latencies (µs); a missing key raises ``KeyError``.
    """
    fixed = math.fsum(float(medians[e.key]) for e in space.fixed_entries().values())
    per_layer = _layer_latencies(space, medians)
    lo = fixed + math.fsum(min(lat for _, lat in cands) for cands in per_layer)
    hi = fixed + math.fsum(max(lat for _, lat in cands) for cands in per_layer)
    return lo, hi


def stratified_archs(
    space: SpaceSpec,
    medians: Mapping[str, float],
    n: int = DEFAULT_NETWORKS,
    seed: int = 0,
    *,
    strata: int = DEFAULT_STRATA,
    named: Sequence[str] = (),
) -> list[str]:
    """The named architectures, then ``n`` distinct ones spread over the LUT-sum range in ``strata`` equal bins.

    A pool of candidates is drawn with ``seed``: each network takes a lean
    ``b`` (uniform in ``[-12, 12]``, the ends included) and each layer a
    candidate with probability ``∝ exp(-b * z)``, ``z`` the candidate's
    latency z-score in its layer (``b > 0``: toward fast blocks). The pool is
    binned by LUT sum; the bins are visited in turn (seeded order within a
    bin) until ``n`` are taken, so each stratum gets ``n / strata`` networks
    where it has them. The same arguments give the same list.
    """
    if n < 0 or strata < 1:
        raise ValueError(f"stratified draw: need n >= 0 and strata >= 1, got n={n}, strata={strata}")
    out = list(dict.fromkeys(space.decode(a).encode() for a in named))
    if n == 0:
        return out
    per_layer = _layer_latencies(space, medians)
    fixed = math.fsum(float(medians[e.key]) for e in space.fixed_entries().values())
    lo, hi = lut_sum_range(space, medians)
    zs = []
    for cands in per_layer:
        lats = [lat for _, lat in cands]
        mean = math.fsum(lats) / len(lats)
        sd = math.sqrt(math.fsum((x - mean) ** 2 for x in lats) / len(lats)) or 1.0
        zs.append([(x - mean) / sd for x in lats])
    rng = random.Random(seed)
    seen = set(out)
    bins: list[list[str]] = [[] for _ in range(strata)]
    width = (hi - lo) / strata or 1.0
    pool = max(40 * n, 400)
    for i in range(pool):
        lean = _MAX_LEAN if i == 0 else -_MAX_LEAN if i == 1 else rng.uniform(-_MAX_LEAN, _MAX_LEAN)
        ops, total = [], fixed
        for cands, z in zip(per_layer, zs, strict=True):
            weights = [math.exp(-lean * zi) for zi in z]
            name, lat = rng.choices(cands, weights=weights)[0]
            ops.append(name)
            total += lat
        arch = ",".join(ops)
        if arch in seen:
            continue
        seen.add(arch)
        bins[min(int((total - lo) / width), strata - 1)].append(arch)
    # visit the extremes first (fastest, slowest, second fastest, …): a few networks still span the range
    order = [b for pair in zip(range(strata), reversed(range(strata)), strict=True) for b in pair]
    order = list(dict.fromkeys(order))
    want, first = len(out) + n, True
    while len(out) < want and any(bins):
        for b in order:
            if bins[b] and len(out) < want:  # the lean-±12 networks open the end bins
                out.append(bins[b].pop(0) if first else bins[b].pop(rng.randrange(len(bins[b]))))
        first = False
    return out


def plan_networks(
    space: SpaceSpec,
    n: int = DEFAULT_NETWORKS,
    seed: int = 0,
    named: Sequence[str] = (),
    draw: str = "stratified",
    strata: int = DEFAULT_STRATA,
) -> list[str]:
    """A job's validation networks: ``named`` first, then ``n`` drawn with ``seed`` as ``draw`` says.

    ``stratified`` spreads them over the LUT-sum range of the MAC-based proxy
    LUT (:func:`searchspace.costs.proxy_medians`: known before any entry is
    measured, the same for the server, the agent and the CLI); ``uniform``
    draws uniformly random architectures (:func:`validation_archs`; a plan
    stored without a draw was drawn so).
    """
    if draw == "uniform":
        return validation_archs(space, n, seed, named)
    if draw != "stratified":
        raise ValueError(f"draw: unknown {draw!r}; known: {', '.join(DRAWS)}")
    from .costs import proxy_medians

    return stratified_archs(space, proxy_medians(space), n, seed, strata=strata, named=named)
