"""hwlut: device latency lookup tables for hardware-aware neural architecture search."""

from importlib import metadata

try:
    __version__ = metadata.version("hwlut")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
