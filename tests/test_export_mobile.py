"""ProxylessNAS's and OFA's blocks export to ONNX and TFLite computing what torch computes (1e-4).

Every candidate at a stride-1 and a stride-2 shape, in few grouped exporter
calls (one per format, split per entry as a profiling run does): ProxylessNAS's MBConv (expansion 1,
3, 6; kernel 3, 5, 7) and OFA's MobileNetV3 block with squeeze-excite and
h-swish (kernel 3, 5, 7; expand 3, 4, 6), one candidate of each other OFA
flavour, and the head entries the new spaces add. ``zero`` is the identity and
is never exported (it is never measured).
"""

from __future__ import annotations

import pytest
from test_export import _check

from profiler.export import ArtifactCache, entry_target
from searchspace import Entry
from searchspace.builtin import ofa_mbv3_space, proxylessnas_space
from searchspace.modules import MBBlock, MBV3Block, build_entry

PXL = proxylessnas_space(32)
OFA = ofa_mbv3_space(64)


def _all(layer) -> list[Entry]:
    return [layer.entry(c) for c in layer.candidates if not c.is_zero]


ENTRIES: list[Entry] = [
    *_all(PXL.layers[0]),  # expansion 1 (no expand conv), k3/5/7, stride 1, 32 -> 16
    *_all(PXL.layers[1]),  # stride 2, 16 -> 24
    *_all(PXL.layers[2]),  # stride 1, 24 -> 24, residual
    Entry("fc", 64, 10, 4, 4),  # ProxylessNAS's Logits: the classifier pools a spatial map
    *_all(OFA.layers[17]),  # squeeze-excite + h-swish, stride 2, 136 -> 192
    *_all(OFA.layers[18]),  # squeeze-excite + h-swish, stride 1, residual
    OFA.layers[0].entry("k3_e1"),  # the fixed first block: middle == input channels
    *(OFA.layers[i].entry("k5_e4") for i in (1, 2, 5, 6, 9, 10)),  # plain, se only, h-swish only; s2 and s1
    OFA.fixed_entries()["pool"],
    OFA.fixed_entries()["mix"],
    OFA.fixed_entries()["fc"],
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], object]:
    """Every entry in both formats, exported afresh: one exporter call per format, split per entry."""
    cache = ArtifactCache(tmp_path_factory.mktemp("artifacts"))
    targets = [entry_target(e) for e in ENTRIES]
    out = {}
    for fmt in ("onnx", "tflite"):
        for target, artifact in zip(targets, cache.build_group(targets, fmt), strict=True):
            out[(target.label, fmt)] = artifact
    return out


def test_the_entries_cover_every_candidate_and_flavour() -> None:
    ops = {e.op for e in ENTRIES}
    assert {"mb", "mb3", "mb3se", "mb3hs", "mb3sehs", "mix", "fc", "pool"} <= ops
    for space, layers in ((PXL, (1, 2)), (OFA, (17, 18))):
        strides = {space.layers[i].stride for i in layers}
        assert strides == {1, 2}
        for i in layers:
            assert {e for e in _all(space.layers[i])} <= set(ENTRIES)
    # the blocks have the parts the entries promise
    first, se_hs = build_entry(ENTRIES[0]), build_entry(OFA.layers[18].entry("k7_e6"))
    assert isinstance(first, MBBlock) and type(first.expand).__name__ == "Identity"
    assert isinstance(se_hs, MBV3Block) and se_hs.has_residual and type(se_hs.se).__name__ == "SqueezeExcite"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_every_new_block_matches_torch(artifacts, fmt: str) -> None:
    worst = {}
    for entry in ENTRIES:
        artifact = artifacts[(entry_target(entry).label, fmt)]
        worst[entry.key] = _check(artifact, build_entry(entry, seed=0), fmt)
    bad = {k: v for k, v in worst.items() if not v <= 1e-4}
    assert not bad, f"{fmt}: max abs diff above 1e-4: {bad}"
