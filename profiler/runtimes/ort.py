"""onnxruntime on the CPU (:class:`OrtRuntime`), registered as ``ort``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import Loaded, Runtime, RuntimeUnavailable, bound_input

__all__ = ["OrtRuntime"]


class _OrtLoaded(Loaded):
    def __init__(self, session: Any, shape: tuple[int, ...], *, io_binding: bool = False) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        self.feed = {self.input_name: bound_input(shape)}
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
