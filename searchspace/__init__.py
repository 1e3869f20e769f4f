"""Search spaces as data: macro-architecture, candidates, layer shapes, LUT entries, keys.

Pure Python: importing this package never imports torch. The torch builders
live in :mod:`searchspace.modules`.
"""

from .entries import OPS, Entry, EntryKeyError, parse_key
from .lutfile import LatencyTable, LutFileError, MissingEntries
from .ops import FBNET_CANDIDATES, Candidate, parse_candidate
from .spec import (
    BUILTIN_SPACES,
    Architecture,
    ArchitectureError,
    HeadSpec,
    Layer,
    SpaceSpec,
    SpecError,
    StageSpec,
    StemSpec,
    fbnet_space,
    load_space,
)

__all__ = [
    "BUILTIN_SPACES",
    "FBNET_CANDIDATES",
    "OPS",
    "Architecture",
    "ArchitectureError",
    "Candidate",
    "Entry",
    "EntryKeyError",
    "HeadSpec",
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
    "parse_candidate",
    "parse_key",
]
