"""Validation networks of a space: which whole networks validate a LUT, and how a job names them.

Pure Python (no torch), so the server can draw the networks of a profiling
job's validation and the device agent, the CLI and the local validation
draw the very same ones: :func:`validation_archs` is deterministic in
``(space, n, seed, named)``. :func:`network_item_key` is the work-item key of
a validation network in a job (unique per architecture, at most 44 characters).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from .spec import Architecture, SpaceSpec

__all__ = [
    "DEFAULT_NETWORKS",
    "MAX_VALIDATION_NETWORKS",
    "MAX_VALIDATION_SEED",
    "NETWORK_KEY_PREFIX",
    "network_item_key",
    "validation_archs",
]

#: Validation networks drawn when none are asked for.
DEFAULT_NETWORKS = 30
#: The most validation networks one job (or one request) may hold.
MAX_VALIDATION_NETWORKS = 1000
#: The largest seed of a draw (and of the fit/held-out split): 32 bits.
MAX_VALIDATION_SEED = 2**32 - 1
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
