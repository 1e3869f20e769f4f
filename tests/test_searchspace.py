"""The search space as data: shapes, entry counts, keys, architectures, specs."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

import searchspace as ss
from searchspace import ArchitectureError, EntryKeyError, SpecError, fbnet_space, parse_key

STYLES = ("canonical", "hwnasbench", "proxyless")


def test_fbnet_224_counts() -> None:
    space = fbnet_space(224)
    assert len(space.layers) == 22
    assert space.num_architectures == 9**22
    assert len({layer.shape_key for layer in space.layers}) == 12
    assert len(space.block_entries()) == 108
    # stem, head, pool and classifier are entries too
    assert len(space.distinct_entries()) == 112
    fixed = space.fixed_entries()
    assert fixed["stem"].key == "conv_h224_w224_cin3_cout16_s2_k3_e1_g1"
    assert fixed["head"].key == "conv_h7_w7_cin352_cout1984_s1_k1_e1_g1"
    assert fixed["pool"].key == "pool_h7_w7_cin1984_cout1984_s1_k7_e1_g1"
    assert fixed["fc"].key == "fc_h1_w1_cin1984_cout1000_s1_k1_e1_g1"


def test_fbnet_224_layer_shapes_follow_table_1() -> None:
    space = fbnet_space(224)
    firsts = [layer for layer in space.layers if layer.index in (0, 1, 5, 9, 13, 17, 21)]
    assert [(lay.cin, lay.cout, lay.h, lay.stride) for lay in firsts] == [
        (16, 16, 112, 1),
        (16, 24, 112, 2),
        (24, 32, 56, 2),
        (32, 64, 28, 2),
        (64, 112, 14, 1),
        (112, 184, 14, 2),
        (184, 352, 7, 1),
    ]
    assert space.final_hw == (7, 7)


def test_fbnet_32_variant_shapes() -> None:
    space = fbnet_space(32)
    assert space.stem.stride == 1
    assert [s.stride for s in space.stages] == [1, 1, 2, 2, 1, 2, 1]
    hs = [layer.h for layer in space.layers]
    assert hs == [32] * 6 + [16] * 4 + [8] * 8 + [4] * 4
    assert space.final_hw == (4, 4)
    assert space.fixed_entries()["head"].cout == 1504  # HW-NAS-Bench's CIFAR setting
    assert len(space.layers) == 22 and space.num_architectures == 9**22
    assert len(space.block_entries()) == 108


def test_head_channels_selectable() -> None:
    assert fbnet_space(224, head_channels=1504).fixed_entries()["head"].cout == 1504


@pytest.mark.parametrize("resolution", [224, 32])
@pytest.mark.parametrize("style", STYLES)
def test_every_key_round_trips(resolution: int, style: str) -> None:
    space = fbnet_space(resolution)
    for entry in space.distinct_entries():
        rendered = entry.render(style)
        assert parse_key(rendered) == entry, rendered
    # distinct entries have distinct keys in every rendering
    assert len({e.render(style) for e in space.distinct_entries()}) == len(space.distinct_entries())


def test_known_renderings() -> None:
    entry = parse_key("ConvBlock_H112_W112_Cin16_Cout24_exp6_kernel5_stride2_group1")
    assert entry == ss.Entry("tbs", 16, 24, 112, 112, 2, 5, 6, 1)
    # ProxylessNAS's expanded_conv is MobileNetV2's block (op mb), not FBNet's TBS, which keeps its own name
    assert entry.proxyless_key() == "tbs-input:112x112x16-output:56x56x24-expand:6-kernel:5-stride:2-idskip:0"
    assert parse_key(entry.proxyless_key()) == entry
    mb = parse_key("expanded_conv-input:112x112x16-output:56x56x24-expand:6-kernel:5-stride:2-idskip:0")
    assert mb == ss.Entry("mb", 16, 24, 112, 112, 2, 5, 6, 1)
    # HW-NAS-Bench's own code also writes exp_6kernel5 in places
    assert parse_key("ConvBlock_H112_W112_Cin16_Cout24_exp_6kernel5_stride2_group1") == entry
    # real keys of the published ProxylessNAS table parse
    assert parse_key("Conv-input:224x224x3-output:112x112x32") == ss.Entry("conv", 3, 32, 224, 224, 2, 3)
    assert parse_key("Conv_1-input:7x7x320-output:7x7x1280").kernel == 1
    assert parse_key("Logits-input:7x7x1280-output:1000") == ss.Entry("fc", 1280, 1000, 7, 7)


@pytest.mark.parametrize(
    "key, field",
    [
        ("tbs_h56_w56_cin24_cout32_s2_k4_e6_g1", "kernel"),
        ("tbs_h56_w56_cin24_cout32_s2_k5_e6_g5", "groups"),
        ("warp_h56_w56_cin24_cout32_s2_k5_e6_g1", "unknown op"),
        ("hello-world", "renderings"),
        ("ConvBlock_H56_W56_Cin24_Cout0_exp6_kernel5_stride2_group1", "cout"),
        ("expanded_conv-input:56x56x24-output:28x28x32-expand:6-kernel:5-stride:2-idskip:1", "idskip"),
        ("expanded_conv-input:56x56x24-output:14x14x32-expand:6-kernel:5-stride:2-idskip:0", "output"),
        ("", "key"),
    ],
)
def test_bad_keys_are_rejected_naming_the_problem(key: str, field: str) -> None:
    with pytest.raises(EntryKeyError, match=field):
        parse_key(key)


def test_architecture_round_trip_and_entries() -> None:
    space = fbnet_space(224)
    rng = random.Random(7)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.decode(arch.encode()) == arch
        entries = space.entries_of(arch)
        assert len(entries) == 22 + 4
        assert set(entries) <= set(space.distinct_entries())


@pytest.mark.parametrize("resolution", [224, 32])
def test_named_fbnet_architectures_decode_by_name(resolution: int) -> None:
    space = fbnet_space(resolution)
    a, b, c = (space.decode(name) for name in ("fbnet-a", "FBNet_B", "fbnet-c"))
    assert len({a, b, c}) == 3
    assert [len(x.ops) for x in (a, b, c)] == [22, 22, 22]
    # FBNet-A starts with a skip and uses shuffle-group blocks; FBNet-C is mostly k5_e6 (paper, Figure 4)
    assert a.ops[0] == "skip" and "k5_e1_g2" in a.ops and "k3_e1_g2" in a.ops
    assert c.ops.count("k5_e6") == 12 and c.ops[-1] == "k3_e6"
    assert space.decode(c.encode()) == c
    with pytest.raises(ArchitectureError, match="expected 22 ops"):
        space.decode("fbnet-d")


@pytest.mark.parametrize(
    "text, match",
    [
        (",".join(["k3_e1"] * 21), "expected 22 ops"),
        (",".join(["k3_e1"] * 23), "expected 22 ops"),
        (",".join(["k3_e1"] * 4 + ["k9_x"] + ["k3_e1"] * 17), r"layer 4 \(stage 1.*unknown op 'k9_x'"),
        (",".join(["k3_e1"] * 21 + ["k7_e6"]), r"layer 21 .*'k7_e6' is not a candidate"),
    ],
)
def test_bad_architectures_name_the_layer(text: str, match: str) -> None:
    with pytest.raises(ArchitectureError, match=match):
        fbnet_space(224).decode(text)


def test_skip_forbidden_where_the_spec_says() -> None:
    data = fbnet_space(32).to_dict()
    data["stages"][1]["candidates"] = ["k3_e1", "k3_e6"]
    space = ss.SpaceSpec.from_dict(data)
    assert space.num_architectures == 9**18 * 2**4
    ops = ["k3_e1"] * 22
    ops[2] = "skip"
    with pytest.raises(ArchitectureError, match=r"layer 2 .*skip is not allowed"):
        space.decode(",".join(ops))


def test_spec_round_trips_through_json_and_yaml(tmp_path) -> None:
    for res in (224, 32):
        space = fbnet_space(res)
        assert ss.SpaceSpec.from_text(space.to_json()) == space
        assert ss.SpaceSpec.from_text(space.to_yaml()) == space
        path = tmp_path / f"space{res}.yaml"
        path.write_text(space.to_yaml())
        assert ss.load_space(str(path)) == space
        assert ss.load_space(str(path)).spec_hash == space.spec_hash


def test_custom_space_from_a_spec_file(tmp_path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\nresolution: 64\nstem: {channels: 8, stride: 2}\n"
        "stages:\n  - {channels: 8, repeats: 2, stride: 1}\n  - {channels: 16, repeats: 1, stride: 2}\n"
        "candidates: [k3_e1, k7_e4_g2, skip]\nhead: {channels: 64}\nnum_classes: 10\n"
    )
    space = ss.load_space(str(path))
    assert len(space.layers) == 3 and space.num_architectures == 27
    assert {e.op for e in space.distinct_entries()} == {"conv", "tbs", "skip", "pool", "fc"}
    assert ss.load_space(str(path), resolution=32).layers[0].h == 16


@pytest.mark.parametrize(
    "patch, match",
    [
        ({"stages": []}, "stages"),
        ({"resolution": -3}, "resolution"),
        ({"candidates": ["k3_e1", "k4_e1"]}, r"candidates\[1\]"),
        ({"stages": [{"channels": 16, "repeats": "x"}]}, r"stages\[0\].repeats"),
        ({"stages": [{"channels": 15, "repeats": 1}]}, r"stages\[0\].*k3_e1_g2"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_specs_name_the_field(patch: dict, match: str) -> None:
    data = fbnet_space(224).to_dict()
    data.update(patch)
    with pytest.raises(SpecError, match=match):
        ss.SpaceSpec.from_dict(data)


def test_importing_searchspace_does_not_import_torch() -> None:
    code = "import sys, searchspace; searchspace.fbnet_space().distinct_entries(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lut_file_round_trip_and_sum(tmp_path) -> None:
    space = fbnet_space(32)
    entries = {e.key: {"median": float(i + 1)} for i, e in enumerate(space.distinct_entries())}
    table = ss.LatencyTable(space=space, entries=entries, complete=True)
    path = tmp_path / "lut.json"
    table.save(path)
    loaded = ss.LatencyTable.load(path)
    assert loaded.entries == entries and loaded.space == space
    arch = space.decode(",".join(["k5_e6"] * 22))
    expected = sum(entries[e.key]["median"] for e in space.entries_of(arch))
    assert loaded.network_latency(arch) == pytest.approx(expected)
    del loaded.entries[space.layers[3].entry("k5_e6").key]
    with pytest.raises(ss.MissingEntries, match="lacks 1 entry"):
        loaded.network_latency(arch)
    doc = json.loads(path.read_text())
    doc["entries"][next(iter(doc["entries"]))]["median"] = float("nan")
    with pytest.raises(ss.LutFileError, match="median"):
        ss.LatencyTable.from_dict(doc)
