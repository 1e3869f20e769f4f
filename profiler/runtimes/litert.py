"""LiteRT (TFLite) on the CPU (:class:`LiteRTRuntime`), registered as ``tflite``.

The interpreter comes from ``ai-edge-litert``, falling back to the legacy
``tflite_runtime`` where only it exists (:data:`TFLITE_PACKAGES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .base import Loaded, Runtime, RuntimeUnavailable, bound_input

__all__ = ["TFLITE_PACKAGES", "LiteRTRuntime"]


class _LiteRTLoaded(Loaded):
    def __init__(self, interpreter: Any, shape: tuple[int, ...]) -> None:
        self.interpreter = interpreter
        interpreter.allocate_tensors()
        self.input_index = interpreter.get_input_details()[0]["index"]
        self.output_index = interpreter.get_output_details()[0]["index"]
        interpreter.set_tensor(self.input_index, bound_input(shape))
        self._invoke: Callable[[], None] = interpreter.invoke

    def run_once(self) -> None:
        self._invoke()

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).copy()

    def close(self) -> None:
        self.interpreter = None


#: TFLite interpreter packages, preferred first: LiteRT, then the legacy ``tflite_runtime``.
TFLITE_PACKAGES: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


def _interpreter_module(packages: tuple[tuple[str, str], ...] | None = None) -> tuple[Any, str, str]:
    """LiteRT's interpreter module, falling back to ``tflite_runtime`` where only it exists.

    Returns ``(module, distribution name, version)``.
    """
    import importlib

    for module_name, dist in packages if packages is not None else TFLITE_PACKAGES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "unknown"
        return module, dist, version
    raise RuntimeUnavailable("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime on older devices)")


def _interpreter_class() -> tuple[Any, str, str]:
    """LiteRT's ``Interpreter`` class, its distribution and version (see :func:`_interpreter_module`)."""
    module, dist, version = _interpreter_module()
    return module.Interpreter, dist, version


@dataclass
class LiteRTRuntime(Runtime):
    """LiteRT (TFLite) on the CPU, XNNPACK on by default."""

    xnnpack: bool = True

    def __post_init__(self) -> None:
        self.name, self.format = "tflite", "tflite"

    def load(self, path: Path, input_shape: tuple[int, ...]) -> Loaded:
        module, _, _ = _interpreter_module()
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": self.threads}
        if not self.xnnpack:
            # The default delegate (XNNPACK) is applied unless the resolver excludes it.
            kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return _LiteRTLoaded(module.Interpreter(**kwargs), input_shape)

    def settings(self) -> dict[str, Any]:
        _, package, version = _interpreter_class()
        return {
            "runtime": "tflite",
            "runtime_package": package,
            "runtime_version": version,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
        }
