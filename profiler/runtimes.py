"""Runtimes that run an exported artifact: onnxruntime and LiteRT here, a phone over adb.

One small interface: a :class:`Runtime` loads an artifact into a
:class:`Loaded` model, which binds an input once and then runs single
invocations (``run_once``), times one (``timed_run``: the measurement
protocol's only entry point) or returns outputs (``infer``, for checking),
and is released with ``close``. ``settings()`` says everything that decides
the timings. The fixed per-invocation overhead of a runtime is measured by
the protocol on a trivial model (:data:`profiler.protocol.TRIVIAL_ENTRY`).

The adb runtime (:class:`profiler.adb.AdbRuntime`) registers itself in
:data:`RUNTIMES` under ``adb``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RUNTIMES",
    "RUNTIME_ALIASES",
    "LiteRTRuntime",
    "Loaded",
    "OrtRuntime",
    "Runtime",
    "RuntimeUnavailable",
    "canonical_runtime",
    "make_runtime",
]


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


def _bound_input(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


class _OrtLoaded(Loaded):
    def __init__(self, session: Any, shape: tuple[int, ...], *, io_binding: bool = False) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        self.feed = {self.input_name: _bound_input(shape)}
        self.binding: Any = None
        if io_binding:
            self.binding = self._bind()

    def _bind(self) -> Any:
        """Bind the input and preallocated outputs once (no copies or allocations per call)."""
        from onnxruntime import OrtValue

        outputs = self.session.run(self.output_names, self.feed)
        binding = self.session.io_binding()
        self._values = [OrtValue.ortvalue_from_numpy(self.feed[self.input_name])]
        binding.bind_ortvalue_input(self.input_name, self._values[0])
        for name, out in zip(self.output_names, outputs, strict=True):
            value = OrtValue.ortvalue_from_shape_and_type(list(out.shape), out.dtype)
            self._values.append(value)
            binding.bind_ortvalue_output(name, value)
        return binding

    def run_once(self) -> None:
        if self.binding is not None:
            self.session.run_with_iobinding(self.binding)
        else:
            self.session.run(self.output_names, self.feed)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self.output_names, {self.input_name: x})[0]

    def close(self) -> None:
        self.session = self.binding = None


@dataclass
class OrtRuntime(Runtime):
    """onnxruntime on the CPU: intra-op threads, one inter-op thread, sequential, no spinning.

    ``io_binding`` binds the input and preallocated outputs once, so a timed
    call copies nothing in or out (a whole network pays that copy once, a
    LUT sum once per entry).
    """

    optimization: str = "all"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    io_binding: bool = False

    def __post_init__(self) -> None:
        self.name, self.format = "ort", "onnx"

    def _ort(self) -> Any:
        try:
            import onnxruntime
        except ImportError as exc:
            raise RuntimeUnavailable("onnxruntime is not installed: pip install 'hwlut[runtime]'") from exc
        return onnxruntime

    def load(self, path: Path, input_shape: tuple[int, ...]) -> Loaded:
        ort = self._ort()
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if self.optimization not in levels:
            raise ValueError(f"optimization: unknown level {self.optimization!r}; known: {', '.join(levels)}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = levels[self.optimization]
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        available = set(ort.get_available_providers())
        providers = [p for p in self.providers if p in available] or ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        return _OrtLoaded(session, input_shape, io_binding=self.io_binding)

    def settings(self) -> dict[str, Any]:
        return {
            "runtime": "ort",
            "runtime_version": self._ort().__version__,
            "threads": self.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "spinning": False,
            "optimization": self.optimization,
            "providers": list(self.providers),
            # absent means off, so LUTs measured before the option existed still resume
            **({"io_binding": True} if self.io_binding else {}),
        }


class _LiteRTLoaded(Loaded):
    def __init__(self, interpreter: Any, shape: tuple[int, ...]) -> None:
        self.interpreter = interpreter
        interpreter.allocate_tensors()
        self.input_index = interpreter.get_input_details()[0]["index"]
        self.output_index = interpreter.get_output_details()[0]["index"]
        interpreter.set_tensor(self.input_index, _bound_input(shape))
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


RUNTIMES: dict[str, type[Runtime]] = {"ort": OrtRuntime, "tflite": LiteRTRuntime}

#: A job's ``runtime`` as people write it → a runtime's name.
RUNTIME_ALIASES = {
    "ort": "ort",
    "onnxruntime": "ort",
    "onnx": "ort",
    "tflite": "tflite",
    "litert": "tflite",
    "ai-edge-litert": "tflite",
    "adb": "adb",
    "android": "adb",
}


def canonical_runtime(name: str | None) -> str | None:
    """``ort``, ``tflite`` or ``adb`` for a runtime name or alias (case-insensitive); None when unknown."""
    return None if name is None else RUNTIME_ALIASES.get(name.strip().lower())


def make_runtime(
    name: str, *, cache_mode: str = "warm", cache_flush_bytes: int | None = None, **settings: Any
) -> Runtime:
    """A runtime by name (``ort``, ``tflite``, ``adb``); an unknown name lists the known ones.

    ``cache_mode="cold"`` evicts the caches before every timed invocation
    (:mod:`profiler.coldcache`; ``cache_flush_bytes`` sets the buffer).
    """
    if cache_mode != "warm":
        from .coldcache import with_cache_mode

        return with_cache_mode(make_runtime(name, **settings), cache_mode, flush_bytes=cache_flush_bytes)
    if name == "adb" and "adb" not in RUNTIMES:
        from . import adb  # noqa: F401 - registers itself

    try:
        cls = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"runtime: unknown runtime {name!r}; known: {', '.join([*RUNTIMES, 'adb'])}") from None
    return cls(**settings)
