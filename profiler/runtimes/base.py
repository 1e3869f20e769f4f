"""What every runtime is: a :class:`Runtime` loads an artifact into a :class:`Loaded` model.

One small interface: a :class:`Runtime` loads an artifact into a
:class:`Loaded` model, which binds an input once and then runs single
invocations (``run_once``), times one (``timed_run``: the measurement
protocol's only entry point) or returns outputs (``infer``, for checking),
and is released with ``close``. ``settings()`` says everything that decides
the timings. The fixed per-invocation overhead of a runtime is measured by
the protocol on a trivial model (:data:`profiler.protocol.TRIVIAL_ENTRY`).

The plug-ins (onnxruntime, LiteRT, adb, the cold-cache wrapper) subclass
these and import nothing else of the package; :mod:`profiler.runtimes`
registers them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Loaded", "Runtime", "RuntimeUnavailable", "bound_input"]


class RuntimeUnavailable(RuntimeError):
    """The runtime's package is not installed here."""


class Loaded(abc.ABC):
    """A model loaded by a runtime, with its input bound."""

    @abc.abstractmethod
    def run_once(self) -> None:
        """One invocation on the bound input."""

    @abc.abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Outputs for ``x`` (in the artifact's own layout)."""

    def timed_run(self, clock: Callable[[], int]) -> float:
        """One timed invocation: its latency in µs, read from ``clock`` (nanoseconds).

        A runtime that times on the device itself (adb) overrides this and
        returns the device's figure instead.
        """
        t0 = clock()
        self.run_once()
        return (clock() - t0) / 1000.0

    def close(self) -> None:  # noqa: B027 - optional hook, most runtimes free on GC
        """Release the model."""


@dataclass
class Runtime(abc.ABC):
    """Settings of one runtime; ``load`` turns an artifact into a :class:`Loaded`."""

    threads: int = 1
    name: str = field(init=False, default="")
    format: str = field(init=False, default="")

    @abc.abstractmethod
    def load(self, path: Path, input_shape: tuple[int, ...]) -> Loaded:
        """Load ``path`` and bind a seeded random input of ``input_shape`` (the artifact's layout)."""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """What decides the timings: runtime, version, threads, delegates, optimisation."""


def bound_input(shape: tuple[int, ...]) -> np.ndarray:
    """The input a runtime binds to a loaded model: seeded standard-normal float32 of ``shape``."""
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
