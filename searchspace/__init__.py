"""Search spaces as data: macro-architecture, candidates, layer shapes, LUT entries, keys.

Pure Python: importing this package never imports torch. The torch builders
live in :mod:`searchspace.modules`.
"""

from .builtin import BUILTIN_SPACES, fbnet_space, load_space
from .entries import OPS, Entry, EntryKeyError, parse_key
from .jobs import JobSettings
from .lutfile import LatencyTable, LutFileError, MissingEntries
from .ops import FBNET_CANDIDATES, Candidate, parse_candidate
from .spec import (
    NAMED_ARCHITECTURES,
    Architecture,
    ArchitectureError,
    HeadSpec,
    Layer,
    SpaceSpec,
    SpecError,
    StageSpec,
    StemSpec,
)
from .validation import (
    DEFAULT_NETWORKS,
    MAX_VALIDATION_NETWORKS,
    MAX_VALIDATION_SEED,
    NETWORK_KEY_PREFIX,
    network_item_key,
    plan_networks,
    validation_archs,
)

__all__ = [
    "BUILTIN_SPACES",
    "DEFAULT_NETWORKS",
    "FBNET_CANDIDATES",
    "MAX_VALIDATION_NETWORKS",
    "MAX_VALIDATION_SEED",
    "NAMED_ARCHITECTURES",
    "NETWORK_KEY_PREFIX",
    "OPS",
    "Architecture",
    "ArchitectureError",
    "Candidate",
    "Entry",
    "EntryKeyError",
    "HeadSpec",
    "JobSettings",
    "LatencyTable",
    "Layer",
    "LutFileError",
    "MissingEntries",
    "SpaceSpec",
    "SpecError",
    "StageSpec",
    "StemSpec",
    "fbnet_space",
    "load_space",
    "network_item_key",
    "parse_candidate",
    "parse_key",
    "plan_networks",
    "validation_archs",
]
