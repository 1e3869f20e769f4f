"""Exporters: ONNX and TFLite artifacts compute what torch computes; the cache is content-addressed."""

from __future__ import annotations

import json
import time
from collections import Counter

import numpy as np
import pytest
import torch

from profiler.export import ArtifactCache, _groups, entry_target, export_many, network_target
from profiler.runtimes import make_runtime
from searchspace import FBNET_CANDIDATES, fbnet_space
from searchspace.modules import build_entry, build_network

SPACE = fbnet_space(32)
SAME = SPACE.layers[2]  # 24 -> 24, 32x32, stride 1: residual
DOWN = SPACE.layers[5]  # 24 -> 32, 32x32, stride 2: channels change
RUNTIME_OF = {"onnx": "ort", "tflite": "tflite"}


@pytest.fixture(scope="module", autouse=True)
def _exported_in_groups() -> None:
    """Fill the cache the way a profiling run does: grouped exporter calls in two worker processes.

    The tests below then check those grouped-and-split artifacts against torch.
    """
    entries = [layer.entry(op) for layer in (SAME, DOWN) for op in FBNET_CANDIDATES]
    entries += list(SPACE.fixed_entries().values())
    jobs = [(entry_target(e), fmt) for fmt in ("onnx", "tflite") for e in entries]
    artifacts = export_many(ArtifactCache(), jobs, workers=2)
    assert [a.target for a in artifacts] == [t.label for t, _ in jobs]


def _check(artifact, module, fmt: str) -> float:
    shape = artifact.meta["input_shape"]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(x).numpy()
    rt = make_runtime(RUNTIME_OF[fmt], threads=1)
    loaded = rt.load(artifact.path, artifact.input_shape)
    feed = x.numpy()
    if fmt == "tflite" and feed.ndim == 4:
        feed = np.ascontiguousarray(feed.transpose(0, 2, 3, 1))
    out = loaded.infer(feed)
    if fmt == "tflite" and out.ndim == 4:
        out = out.transpose(0, 3, 1, 2)
    loaded.close()
    assert out.shape == expected.shape
    return float(np.abs(out - expected).max())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("layer", [SAME, DOWN], ids=["s1-same", "s2-down"])
@pytest.mark.parametrize("op", FBNET_CANDIDATES)
def test_candidate_matches_torch(op: str, layer, fmt: str) -> None:
    entry = layer.entry(op)
    artifact = ArtifactCache().get(entry_target(entry), fmt)
    diff = _check(artifact, build_entry(entry, seed=0), fmt)
    assert diff <= 1e-4, f"{entry.key} {fmt}: max abs diff {diff}"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("name", ["stem", "head", "pool", "fc"])
def test_fixed_entries_match_torch(name: str, fmt: str) -> None:
    entry = SPACE.fixed_entries()[name]
    artifact = ArtifactCache().get(entry_target(entry), fmt)
    assert _check(artifact, build_entry(entry, seed=0), fmt) <= 1e-4


def test_bn_is_not_an_identity() -> None:
    block = build_entry(DOWN.entry("k3_e6"), seed=0)
    bn = block.depthwise[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    # seeded: the same seed gives the same weights, another seed others
    again = build_entry(DOWN.entry("k3_e6"), seed=0)
    other = build_entry(DOWN.entry("k3_e6"), seed=1)
    assert torch.equal(block.expand[0].weight, again.expand[0].weight)
    assert not torch.equal(block.expand[0].weight, other.expand[0].weight)


def test_tbs_block_structure() -> None:
    block = build_entry(SAME.entry("k5_e1_g2"))
    assert block.has_residual
    assert block.expand[0].groups == 2 and block.project[0].groups == 2
    assert block.depthwise[0].kernel_size == (5, 5) and block.depthwise[0].groups == 24
    assert type(block.shuffle).__name__ == "ChannelShuffle"
    down = build_entry(DOWN.entry("k3_e6"))
    assert not down.has_residual and down.depthwise[0].stride == (2, 2)
    assert down.expand[0].out_channels == 24 * 6
    skip = build_entry(SAME.entry("skip"))
    x = torch.randn(1, 24, 32, 32)
    assert torch.equal(skip(x), x)
    assert build_entry(DOWN.entry("skip"))(x).shape == (1, 32, 16, 16)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_whole_network_matches_torch(fmt: str) -> None:
    arch = ",".join(FBNET_CANDIDATES[i % 9] for i in range(22))
    target = network_target(SPACE, arch)
    artifact = ArtifactCache().get(target, fmt)
    net = build_network(SPACE, arch, seed=0)
    assert artifact.meta["input_shape"] == [1, 3, 32, 32]
    assert _check(artifact, net, fmt) <= 1e-4


@pytest.mark.slow
def test_cache_is_instant_when_warm_and_rebuilds_corrupt_files(tmp_path) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    target = entry_target(SPACE.layers[20].entry("k3_e1"))
    first = cache.get(target, "onnx")
    started = time.perf_counter()
    again = cache.get(target, "onnx")
    assert again.path == first.path and again.sha256 == first.sha256
    assert time.perf_counter() - started < 0.5  # hashing a small file, no export

    # another batch size or seed is another artifact
    assert cache.address(target, "onnx", batch=2) != cache.address(target, "onnx")
    assert cache.address(target, "onnx", seed=3) != cache.address(target, "onnx")
    assert cache.address(target, "tflite") != cache.address(target, "onnx")

    # a truncated artifact (a killed writer, a bad disk) is detected and rebuilt
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    assert cache.lookup(target, "onnx") is None
    rebuilt = cache.get(target, "onnx")
    assert rebuilt.path.read_bytes() == data

    # a flipped byte too
    flipped = bytearray(data)
    flipped[len(flipped) // 3] ^= 0xFF
    first.path.write_bytes(bytes(flipped))
    assert cache.get(target, "onnx").path.read_bytes() == data

    # an artifact without its sidecar (killed between the two writes) is not trusted
    sidecar = first.path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    sidecar.unlink()
    assert cache.lookup(target, "onnx") is None
    assert cache.get(target, "onnx").sha256 == meta["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_grouped_export_equals_a_lone_export(tmp_path, fmt: str) -> None:
    targets = [entry_target(DOWN.entry(op)) for op in ("k5_e6", "k3_e1_g2", "skip")]
    lone = ArtifactCache(tmp_path / "lone").get(targets[0], fmt)
    grouped = ArtifactCache(tmp_path / "grouped").build_group(targets, fmt)
    assert grouped[0].meta["input_shape"] == lone.meta["input_shape"]
    rt = make_runtime(RUNTIME_OF[fmt])
    x = np.random.default_rng(3).standard_normal(lone.input_shape, dtype=np.float32)
    a = rt.load(lone.path, lone.input_shape).infer(x)
    b = rt.load(grouped[0].path, grouped[0].input_shape).infer(x)
    assert np.abs(a - b).max() <= 1e-5
    # a split piece holds its own branch only: far smaller than the three together
    assert grouped[1].path.stat().st_size < grouped[0].path.stat().st_size


def _op_counts(path, fmt: str) -> Counter:
    """How many operators of each type the artifact holds."""
    if fmt == "onnx":
        import onnx

        return Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    codes = model.operatorCodes
    return Counter(
        max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode)
        for op in model.subgraphs[0].operators
    )


#: Two small networks (mostly skips: cheap to export) that differ in a few layers.
SMALL_NETS = [
    ",".join("k3_e1" if i in (4, 9) else "skip" for i in range(22)),
    ",".join("k5_e3" if i == 13 else "k3_e1_g2" if i == 2 else "skip" for i in range(22)),
]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_grouped_networks_equal_lone_exports(tmp_path, fmt: str) -> None:
    """A network cut out of a grouped export is the model a lone export gives: same outputs, same operators."""
    targets = [network_target(SPACE, arch) for arch in SMALL_NETS]
    grouped = ArtifactCache(tmp_path / "grouped").build_group(targets, fmt)
    rt = make_runtime(RUNTIME_OF[fmt], threads=1)
    for target, piece in zip(targets, grouped, strict=True):
        lone = ArtifactCache(tmp_path / "lone").get(target, fmt)
        assert piece.target == lone.target == target.label
        same = ("sha256", "size")  # the bytes differ (names carry the branch), nothing else does
        assert {k: v for k, v in piece.meta.items() if k not in same} == {
            k: v for k, v in lone.meta.items() if k not in same
        }
        assert _op_counts(piece.path, fmt) == _op_counts(lone.path, fmt)
        x = np.random.default_rng(5).standard_normal(lone.input_shape, dtype=np.float32)
        a, b = rt.load(lone.path, lone.input_shape), rt.load(piece.path, piece.input_shape)
        assert np.abs(a.infer(x) - b.infer(x)).max() <= 1e-6
        a.close()
        b.close()
    assert _check(grouped[0], build_network(SPACE, SMALL_NETS[0], seed=0), fmt) <= 1e-4


def test_networks_are_exported_in_groups() -> None:
    """export_many's chunks: one format and one kind each; networks several per call, enough chunks for the workers."""
    archs = [",".join(FBNET_CANDIDATES[(i + k) % 9] for i in range(22)) for k in range(10)]
    entries = [layer.entry(op) for layer in (SAME, DOWN) for op in FBNET_CANDIDATES]
    jobs = [(network_target(SPACE, a), fmt) for fmt in ("onnx", "tflite") for a in archs]
    jobs += [(entry_target(e), fmt) for fmt in ("onnx", "tflite") for e in entries]
    chunks = _groups(list(range(len(jobs))), jobs, workers=2)
    assert sorted(i for c in chunks for i in c) == list(range(len(jobs)))
    for chunk in chunks:
        assert len({(jobs[i][1], jobs[i][0].entry is None) for i in chunk}) == 1
    nets = [c for c in chunks if jobs[c[0]][0].entry is None]
    assert sorted(len(c) for c in nets) == [5, 5, 5, 5]  # 10 per format: two calls each, one per worker
    # the costliest first: TFLite networks, TFLite entries, then ONNX
    assert [(jobs[c[0]][1], jobs[c[0]][0].entry is None) for c in chunks[:2]] == [("tflite", True)] * 2
    assert jobs[chunks[2][0]][1] == "tflite" and jobs[chunks[-1][0]][1] == "onnx"
    # a few networks: one per call, so that both workers get one
    few = _groups([0, 1], jobs, workers=2)
    assert sorted(map(len, few)) == [1, 1]
