"""Runtimes that run an exported artifact: onnxruntime and LiteRT here, a phone over adb.

The interface is in :mod:`profiler.runtimes.base` (:class:`Runtime` loads an
artifact into a :class:`Loaded` model that ``timed_run`` times); each
plug-in is a module of its own that imports only that base:

``ort``        :class:`OrtRuntime`, onnxruntime on the CPU
``litert``     :class:`LiteRTRuntime`, LiteRT (TFLite) on the CPU
``adb``        :class:`AdbRuntime`, TFLite's ``benchmark_model`` on a phone
``coldcache``  :class:`ColdCacheRuntime`, any runtime with the caches evicted before timed runs

This module registers them (:data:`RUNTIMES`) and builds one by name
(:func:`make_runtime`, which wraps it for a cache mode).
"""

from __future__ import annotations

from typing import Any

from searchspace.jobs import RUNTIME_ALIASES, canonical_runtime, default_cache_mode

from .adb import AdbRuntime
from .base import Loaded, Runtime, RuntimeUnavailable
from .coldcache import CACHE_MODES, ColdCacheRuntime, cache_mode_of, warm_runtime, with_cache_mode
from .litert import LiteRTRuntime
from .ort import OrtRuntime

__all__ = [
    "CACHE_MODES",
    "RUNTIMES",
    "RUNTIME_ALIASES",
    "AdbRuntime",
    "ColdCacheRuntime",
    "LiteRTRuntime",
    "Loaded",
    "OrtRuntime",
    "Runtime",
    "RuntimeUnavailable",
    "cache_mode_of",
    "canonical_runtime",
    "default_cache_mode",
    "make_runtime",
    "warm_runtime",
    "with_cache_mode",
]

#: Runtime name -> its class, as :func:`make_runtime` finds it.
RUNTIMES: dict[str, type[Runtime]] = {"ort": OrtRuntime, "tflite": LiteRTRuntime, "adb": AdbRuntime}


def make_runtime(
    name: str, *, cache_mode: str = "warm", cache_flush_bytes: int | None = None, **settings: Any
) -> Runtime:
    """A runtime by name (``ort``, ``tflite``, ``adb``); an unknown name lists the known ones.

    ``cache_mode="cold"`` evicts the caches before every timed invocation
    (:mod:`profiler.runtimes.coldcache`; ``cache_flush_bytes`` sets the buffer).
    """
    if cache_mode != "warm":
        return with_cache_mode(make_runtime(name, **settings), cache_mode, flush_bytes=cache_flush_bytes)
    try:
        cls = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"runtime: unknown runtime {name!r}; known: {', '.join(RUNTIMES)}") from None
    return cls(**settings)
