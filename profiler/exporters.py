"""How a group of torch modules becomes ONNX or TFLite files: one exporter call, split per module.

Several modules are exported side by side as the branches of one module (the
exporters' fixed cost per call is then shared) and the result is split into
one file per branch (:mod:`profiler.split`). ONNX uses torch's default
(dynamo) exporter with ``external_data=False`` (one file); TFLite uses
litert-torch with channel-last inputs and outputs. The artifact cache that
calls these lives in :mod:`profiler.export`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .split import split_onnx, split_tflite

__all__ = ["EXPORTERS", "ONNX_OPTIMIZE", "ExportError", "quiet"]

#: onnxscript's graph optimiser on. Without it the exported graph keeps Shape/Expand/CastLike
#: chains around every BatchNorm that block onnxruntime's fusions: k5_e6 at 32x32 ran
#: 667 µs instead of 100 µs on onnxruntime 1.32 (level all, 1 thread).
ONNX_OPTIMIZE = True


class ExportError(RuntimeError):
    """An exporter failed; the message carries the end of what it printed."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters' progress chatter (Python and native) and deprecation noise.

    What they printed is kept and raised with the error when an export fails.
    """
    buf = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as native, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = [os.dup(1), os.dup(2)]
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            for fd in (1, 2):
                os.dup2(native.fileno(), fd)
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield
        except Exception as exc:
            native.seek(0)
            tail = (buf.getvalue() + native.read().decode(errors="replace"))[-4000:]
            raise ExportError(f"export failed: {exc}\n--- exporter output ---\n{tail}") from exc
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            logging.disable(previous)


class _Branches:
    """Several modules side by side: input *k* -> module *k* -> output *k* (built lazily with torch)."""

    @staticmethod
    def make(modules: list[Any]) -> Any:
        from torch import nn

        class Branches(nn.Module):
            def __init__(self, parts: list[nn.Module]) -> None:
                super().__init__()
                self.parts = nn.ModuleList(parts)

            def forward(self, *xs: Any) -> tuple[Any, ...]:
                return tuple(part(x) for part, x in zip(self.parts, xs, strict=True))

        return Branches(modules).eval()


def _export_onnx(modules: list[Any], examples: list[Any], paths: list[Path]) -> list[dict[str, Any]]:
    """ONNX files for ``modules``: one export call, split per branch when there are several."""
    with quiet():
        import torch

        module = modules[0] if len(modules) == 1 else _Branches.make(modules)
        combined = paths[0] if len(modules) == 1 else paths[0].with_name("combined.onnx")
        program = torch.onnx.export(
            module,
            tuple(examples),
            str(combined),
            dynamo=True,
            external_data=False,
            optimize=ONNX_OPTIMIZE,
            verbose=False,
        )
        if len(modules) > 1:
            split_onnx(combined, paths)
            combined.unlink()
    opset = next((o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return [
        {"opset": opset, "layout": "NCHW" if x.dim() == 4 else "NC", "runtime_input_shape": list(x.shape)}
        for x in examples
    ]


def _export_tflite(modules: list[Any], examples: list[Any], paths: list[Path]) -> list[dict[str, Any]]:
    """TFLite files for ``modules`` with channel-last I/O: one conversion, split per branch."""
    with quiet():
        import litert_torch
        import torch

        module = modules[0] if len(modules) == 1 else _Branches.make(modules)
        with torch.no_grad():
            outs = module(*examples)
        outs = (outs,) if len(modules) == 1 else outs
        wrapped = litert_torch.to_channel_last_io(
            module,
            args=[k for k, x in enumerate(examples) if x.dim() == 4],
            outputs=[k for k, y in enumerate(outs) if y.dim() == 4],
        ).eval()
        samples = [x.permute(0, 2, 3, 1).contiguous() if x.dim() == 4 else x for x in examples]
        flatbuffer = litert_torch.convert(wrapped, tuple(samples)).model_content()
        if len(modules) == 1:
            paths[0].write_bytes(flatbuffer)
        else:
            split_tflite(flatbuffer, paths)
    return [{"layout": "NHWC" if x.dim() == 4 else "NC", "runtime_input_shape": list(x.shape)} for x in samples]


EXPORTERS = {"onnx": _export_onnx, "tflite": _export_tflite}
