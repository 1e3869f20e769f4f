"""Split a model of several independent branches into one model per branch.

Each exporter call pays a large fixed cost (tracing, decompositions, lowering)
that barely grows with the graph, so :mod:`profiler.export` exports many
entries as the independent branches of one module (input *k* -> output *k*)
and cuts the result into one file per entry here: ONNX with
``onnx.utils.Extractor``, TFLite by rebuilding the flatbuffer with only what
output *k* depends on (LiteRT's own schema object API). The tests check each
piece against torch like any other artifact.
"""

from __future__ import annotations

import copy
from pathlib import Path

__all__ = ["split_onnx", "split_tflite"]


def split_onnx(combined: Path, outputs: list[Path]) -> None:
    """Write branch *k* of the ONNX model ``combined`` (input *k* -> output *k*) to ``outputs[k]``."""
    import onnx
    import onnx.utils

    model = onnx.load(str(combined))
    graph = model.graph
    if len(graph.input) != len(outputs) or len(graph.output) != len(outputs):
        raise ValueError(f"split_onnx: {len(graph.input)} inputs, {len(graph.output)} outputs, {len(outputs)} files")
    extractor = onnx.utils.Extractor(model)
    for k, path in enumerate(outputs):
        part = extractor.extract_model([graph.input[k].name], [graph.output[k].name])
        part.producer_name, part.producer_version = model.producer_name, model.producer_version
        onnx.checker.check_model(part)
        onnx.save(part, str(path))


def split_tflite(combined: bytes, outputs: list[Path]) -> None:
    """Write branch *k* of the TFLite flatbuffer ``combined`` to ``outputs[k]`` as a model of its own."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(combined, 0)
    if len(model.subgraphs) != 1:
        raise ValueError(f"split_tflite: expected one subgraph, got {len(model.subgraphs)}")
    graph = model.subgraphs[0]
    if len(graph.inputs) != len(outputs) or len(graph.outputs) != len(outputs):
        raise ValueError(
            f"split_tflite: {len(graph.inputs)} inputs, {len(graph.outputs)} outputs, {len(outputs)} files"
        )
    if any(b.offset for b in model.buffers or []):
        raise ValueError("split_tflite: buffers stored outside the flatbuffer are not supported")
    producer = {t: i for i, op in enumerate(graph.operators or []) for t in op.outputs}
    for k, path in enumerate(outputs):
        # Walk back from output k: every tensor and operator it depends on.
        tensors: set[int] = set()
        ops: set[int] = set()
        stack = [int(graph.outputs[k])]
        while stack:
            t = stack.pop()
            if t < 0 or t in tensors:
                continue
            tensors.add(t)
            if t in producer and producer[t] not in ops:
                op = graph.operators[producer[t]]
                ops.add(producer[t])
                stack.extend(int(i) for i in op.inputs)
                stack.extend(int(i) for i in (op.intermediates if op.intermediates is not None else []))
                stack.extend(int(i) for i in op.outputs)
        inputs = [int(t) for t in graph.inputs if int(t) in tensors]
        if inputs != [int(graph.inputs[k])]:
            raise ValueError(f"split_tflite: output {k} does not depend on input {k} alone")
        tensor_map = {old: new for new, old in enumerate(sorted(tensors))}
        buffer_map = {0: 0}  # buffer 0 is the empty sentinel every model starts with
        buffers = [schema.BufferT()]

        def keep_buffer(old: int, buffer_map: dict[int, int] = buffer_map, buffers: list = buffers) -> int:
            if old not in buffer_map:
                buffer_map[old] = len(buffers)
                buffers.append(model.buffers[old])
            return buffer_map[old]

        part_tensors = []
        for old in sorted(tensors):
            tensor = copy.copy(graph.tensors[old])
            tensor.buffer = keep_buffer(int(tensor.buffer))
            part_tensors.append(tensor)
        part_ops = []
        for i in sorted(ops):
            op = copy.copy(graph.operators[i])
            op.inputs = [tensor_map[int(t)] if int(t) >= 0 else -1 for t in op.inputs]
            op.outputs = [tensor_map[int(t)] for t in op.outputs]
            if op.intermediates is not None:
                op.intermediates = [tensor_map[int(t)] for t in op.intermediates]
            part_ops.append(op)
        sub = schema.SubGraphT()
        sub.tensors, sub.operators = part_tensors, part_ops
        sub.inputs, sub.outputs = [tensor_map[inputs[0]]], [tensor_map[int(graph.outputs[k])]]
        sub.name = graph.name
        part = schema.ModelT()
        part.version, part.description = model.version, model.description
        part.operatorCodes = model.operatorCodes
        part.subgraphs = [sub]
        part.metadata = []
        for meta in model.metadata or []:
            meta = copy.copy(meta)
            meta.buffer = keep_buffer(int(meta.buffer))
            part.metadata.append(meta)
        part.buffers = buffers
        part.signatureDefs = [_signature(schema, sub)]
        builder = flatbuffers.Builder(1024)
        builder.Finish(part.Pack(builder), file_identifier=b"TFL3")
        path.write_bytes(bytes(builder.Output()))


def _signature(schema, sub) -> object:
    """A ``serving_default`` signature naming the one input and output."""
    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0
    signature.inputs, signature.outputs = [], []
    for names, index in ((signature.inputs, sub.inputs[0]), (signature.outputs, sub.outputs[0])):
        item = schema.TensorMapT()
        item.name = "args_0" if names is signature.inputs else "output_0"
        item.tensorIndex = index
        names.append(item)
    return signature
