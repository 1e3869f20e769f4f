"""A cache-state-aware measurement mode: evict the caches before every timed invocation.

A block timed alone, run after run, finds its weights and activations hot in
the caches; inside a whole network each layer runs after megabytes of other
layers' data. In the ``cold`` cache mode every invocation (warm-up, sentinel
and timed runs alike) is preceded by reading a buffer larger than the
last-level cache, **outside** the timed region, so that the timed
invocation starts with cold caches. The buffer is only read, never written:
a write would leave dirty lines whose write-back the timed run would pay.

:func:`with_cache_mode` wraps any runtime; the wrapper's ``settings()`` adds
``cache_mode``, ``cache_flush_bytes`` and ``last_level_cache_bytes``, so the
LUT's provenance says how it was measured and the profiler refuses to merge
warm and cold measurements into one file (``runtime`` is a checked
provenance field). The ``warm`` mode (the default) returns the runtime
unchanged; its settings carry no ``cache_mode`` key (absent means warm), so
LUTs measured before this mode existed continue to resume.

The ``l2`` mode reads a buffer of twice one core's L2 cache instead: the L2
loses the block's weights and activations, the last-level cache keeps them,
which is where a whole network's layers find their weights when the network
fits the last-level cache (as FBNet does here: ~20 MB against 480 MiB).

The flushed size is 1.5 x the last-level cache (from
``/sys/devices/system/cpu/cpu0/cache``, else ``lscpu``, else 32 MiB), capped
at :data:`MAX_FLUSH_BYTES`: a virtual machine may report its host's whole L3
(480 MiB here), and reading that much would cost ~60 ms per invocation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from searchspace.jobs import CACHE_MODES, DEFAULT_CACHE_MODES

from .base import Loaded, Runtime

__all__ = [
    "CACHE_MODES",
    "DEFAULT_CACHE_MODES",
    "DEFAULT_LLC_BYTES",
    "MAX_FLUSH_BYTES",
    "MODE_SETTINGS",
    "CacheFlusher",
    "ColdCacheLoaded",
    "ColdCacheRuntime",
    "cache_mode_of",
    "default_flush_bytes",
    "eviction_seconds",
    "l2_cache_bytes",
    "last_level_cache_bytes",
    "warm_runtime",
    "with_cache_mode",
]

#: The keys the wrapper adds to a runtime's ``settings()``: how entries were measured, not by what.
MODE_SETTINGS = ("cache_mode", "cache_flush_bytes", "last_level_cache_bytes")
#: One core's L2 assumed where the system does not say.
DEFAULT_L2_BYTES = 2 << 20
#: The last-level cache assumed where the system does not say.
DEFAULT_LLC_BYTES = 32 << 20
#: The most the default flush reads per invocation (128 MiB: ~15 ms on this machine).
MAX_FLUSH_BYTES = 128 << 20

_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMG]?)(i?B)?\s*$", re.IGNORECASE)


def _parse_size(text: str) -> int | None:
    """``"32768K"``, ``"8 MiB"``, ``"491520K"`` → bytes; None when unreadable."""
    match = _SIZE.match(text)
    if not match:
        return None
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    return int(float(match.group(1)) * unit)


def _data_caches(root: str | Path) -> Iterator[tuple[int, int]]:
    """``(level, bytes)`` of CPU 0's data and unified caches, as sysfs lists them under ``root``."""
    for index in sorted(Path(root).glob("index*")):
        try:
            level = int((index / "level").read_text().strip())
            kind = (index / "type").read_text().strip()
            size = _parse_size((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
        if kind != "Instruction" and size:
            yield level, size


def last_level_cache_bytes(root: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """The size of CPU 0's highest-level data or unified cache, in bytes; None where nothing says.

    Reads sysfs (``index*/level``, ``type``, ``size``), then ``lscpu``'s
    ``L3 cache`` / ``L2 cache`` lines (which name the size of one instance or
    of all together; the size is taken as written).
    """
    best = max(_data_caches(root), default=None)
    return best[1] if best is not None else _lscpu_llc()


def l2_cache_bytes(root: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """The size of CPU 0's level-2 data or unified cache (one core's), in bytes; None where sysfs does not say."""
    return next((size for level, size in _data_caches(root) if level == 2), None)


def _lscpu_llc() -> int | None:
    if shutil.which("lscpu") is None:
        return None
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for name in ("L3 cache", "L2 cache"):
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                size = _parse_size(value.split("(")[0])
                if size:
                    return size
    return None


def default_flush_bytes(llc_bytes: int | None = None) -> int:
    """1.5 x the last-level cache (detected when not given), capped at :data:`MAX_FLUSH_BYTES`."""
    llc = llc_bytes if llc_bytes is not None else (last_level_cache_bytes() or DEFAULT_LLC_BYTES)
    return int(min(llc * 3 // 2, MAX_FLUSH_BYTES))


class CacheFlusher:
    """Reads every cache line of a buffer of ``size_bytes`` to evict what the caches held."""

    def __init__(self, size_bytes: int) -> None:
        if size_bytes < 4096:
            raise ValueError(f"cache flush buffer: at least 4096 bytes, got {size_bytes}")
        self.size_bytes = int(size_bytes)
        self._words = np.ones(self.size_bytes // 8, dtype=np.uint64)
        self._lines = self._words[::8]  # one 8-byte word per 64-byte cache line
        self.touches = 0
        self.seconds = 0.0
        self.sink = 0

    def touch(self) -> None:
        """Read the whole buffer (a strided sum loads each cache line once); ``seconds`` adds up what it took."""
        t0 = time.perf_counter_ns()
        self.sink = int(self._lines.sum())
        self.seconds += (time.perf_counter_ns() - t0) / 1e9
        self.touches += 1


class ColdCacheLoaded(Loaded):
    """A loaded model whose every ``timed_run`` first evicts the caches, outside the timed region."""

    def __init__(self, inner: Loaded, flusher: CacheFlusher | Any) -> None:
        self.inner = inner
        self.flusher = flusher

    def run_once(self) -> None:
        """One invocation of the wrapped model (no flush: only timed runs flush)."""
        self.inner.run_once()

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The wrapped model's outputs for ``x``."""
        return self.inner.infer(x)

    def timed_run(self, clock: Callable[[], int]) -> float:
        """Flush, then the wrapped model's own timed invocation (its clock reads come after the flush)."""
        self.flusher.touch()
        return self.inner.timed_run(clock)

    def close(self) -> None:
        """Release the wrapped model."""
        self.inner.close()


class ColdCacheRuntime(Runtime):
    """A runtime whose models run with cold caches (``cold``) or a cold L2 (``l2``); the rest is the wrapped one's."""

    def __init__(
        self,
        inner: Runtime,
        flush_bytes: int | None = None,
        *,
        llc_bytes: int | None = None,
        mode: str = "cold",
    ) -> None:
        if mode not in ("cold", "l2"):
            raise ValueError(f"cache mode: ColdCacheRuntime flushes for 'cold' or 'l2', not {mode!r}")
        if inner.name == "adb":
            raise ValueError(f"cache mode {mode!r} evicts this machine's caches; it cannot apply to a phone (adb)")
        self.inner = inner
        self.mode = mode
        self.threads = inner.threads
        self.name = inner.name
        self.format = inner.format
        self.llc_bytes = llc_bytes if llc_bytes is not None else last_level_cache_bytes()
        if flush_bytes:
            self.flush_bytes = int(flush_bytes)
        elif mode == "l2":
            self.flush_bytes = 2 * (l2_cache_bytes() or DEFAULT_L2_BYTES)
        else:
            self.flush_bytes = default_flush_bytes(self.llc_bytes or DEFAULT_LLC_BYTES)
        self._flusher: CacheFlusher | None = None

    def __repr__(self) -> str:
        return f"ColdCacheRuntime({self.inner!r}, mode={self.mode!r}, flush_bytes={self.flush_bytes})"

    @property
    def flusher(self) -> CacheFlusher:
        """One buffer shared by every model this runtime loads (allocated on first use)."""
        if self._flusher is None:
            self._flusher = CacheFlusher(self.flush_bytes)
        return self._flusher

    def load(self, path: Path, input_shape: tuple[int, ...]) -> Loaded:
        """The wrapped runtime's model, flushing before each timed invocation."""
        return ColdCacheLoaded(self.inner.load(path, input_shape), self.flusher)

    def settings(self) -> dict[str, Any]:
        """The wrapped runtime's settings plus ``cache_mode`` and the flushed and detected sizes."""
        return {
            **self.inner.settings(),
            "cache_mode": self.mode,
            "cache_flush_bytes": self.flush_bytes,
            "last_level_cache_bytes": self.llc_bytes,
        }


def with_cache_mode(runtime: Runtime, mode: str = "warm", *, flush_bytes: int | None = None) -> Runtime:
    """``runtime`` as is (``warm``), or wrapped to evict the caches (``cold``) or the L2 (``l2``) before timed runs."""
    if mode == "warm":
        return runtime
    if mode in ("cold", "l2"):
        return ColdCacheRuntime(runtime, flush_bytes, mode=mode)
    raise ValueError(f"cache mode: unknown {mode!r}; known: {', '.join(CACHE_MODES)}")


def warm_runtime(runtime: Runtime) -> Runtime:
    """The runtime without its cache-mode wrapper: how a whole network runs, as deployed."""
    return runtime.inner if isinstance(runtime, ColdCacheRuntime) else runtime


def eviction_seconds(runtime: Runtime) -> float | None:
    """Seconds ``runtime``'s models spent evicting caches before timed runs so far; None for a warm runtime."""
    if not isinstance(runtime, ColdCacheRuntime):
        return None
    return runtime._flusher.seconds if runtime._flusher is not None else 0.0


def cache_mode_of(settings: dict[str, Any] | None) -> str:
    """The cache mode recorded in a runtime's settings (``warm`` where absent)."""
    return str((settings or {}).get("cache_mode", "warm"))
