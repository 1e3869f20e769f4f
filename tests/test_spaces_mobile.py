"""ProxylessNAS's and OFA's spaces: specs, keys of the real Pixel 1 and Note10 tables, LUT sums, search."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import yaml
from testdata import REFERENCE_LUTS

from lut_store.formats import read_table, write_table
from searchspace import ArchitectureError, Entry, SpaceSpec, SpecError, load_space, parse_key
from searchspace.builtin import SPACE_SOURCES, ofa_mbv3_space, proxylessnas_space
from searchspace.reference import match_latencies, read_reference_lut, reference_latencies

TABLES = {
    "proxylessnas-mobile": "proxylessnas_mobile_trim.yaml",
    "ofa-mbv3": "ofa_note10_224.yaml",
}


@pytest.mark.parametrize("space_name", list(TABLES))
def test_every_key_maps_to_an_entry_of_its_space_and_back(space_name: str) -> None:
    text = (REFERENCE_LUTS / TABLES[space_name]).read_text()
    keys = list(yaml.safe_load(text))
    space = load_space(space_name)
    entries = [parse_key(key) for key in keys]
    assert [e.proxyless_key() for e in entries] == keys  # back to the same key text, every key
    assert set(entries) == set(space.distinct_entries())  # and the table is exactly the space's entries
    assert len(entries) == len(space.distinct_entries())
    report = read_reference_lut(text, space)
    assert report.complete and report.table.complete and not report.table.missing()
    # the other renderings of every entry round-trip too
    for entry in entries:
        assert parse_key(entry.hwnasbench_key()) == entry == parse_key(entry.key)
    # the store's reader maps every row (nothing left as a foreign op)
    assert read_table(text).unmapped() == []


def test_unmappable_keys_are_reported_not_dropped() -> None:
    good = "Conv-input:224x224x3-output:112x112x32"
    bad = "expanded_conv-input:56x56x24-output:28x28x40-expand:3-kernel:3-stride:2-idskip:1"  # idskip lies
    alien = "SomeOp-input:7x7x320-output:7x7x1280"
    outside = "Conv-input:224x224x3-output:112x112x48"  # parses, but is no entry of the space
    text = yaml.safe_dump({k: {"count": 1, "mean": 1.5, "var": 0.0} for k in (good, bad, alien, outside)})
    report = read_reference_lut(text, proxylessnas_space())
    assert set(report.unmapped) == {bad, alien} and "idskip" in report.unmapped[bad]
    assert report.outside == [outside]
    assert len(report.missing) == 71 and not report.complete and not report.table.complete
    assert report.table.latency(parse_key(good)) == 1500.0
    # the store's reader keeps them as rows of their own
    assert set(read_table(text, "proxyless").unmapped()) == {bad, alien}


def _mb_key(layer, op: str) -> str:
    """A ProxylessNAS key written from the layer's shape by hand (not by hwlut's renderer)."""
    k, e = (int(part[1:]) for part in op.split("_"))
    oh = -(-layer.h // layer.stride)
    idskip = int(layer.stride == 1 and layer.cin == layer.cout)
    return (
        f"expanded_conv-input:{layer.h}x{layer.w}x{layer.cin}-output:{oh}x{oh}x{layer.cout}"
        f"-expand:{e}-kernel:{k}-stride:{layer.stride}-idskip:{idskip}"
    )


def test_network_lut_sum_equals_the_yaml_sum() -> None:
    from searcher.lut import LatencyModel

    text = (REFERENCE_LUTS / TABLES["proxylessnas-mobile"]).read_text()
    raw = yaml.safe_load(text)
    space = proxylessnas_space()
    table = read_reference_lut(text, space).table
    rng = random.Random(7)
    archs = [space.sample(rng) for _ in range(5)]
    assert any("zero" in a.ops for a in archs)
    fixed = [
        "Conv-input:224x224x3-output:112x112x32",
        "Conv_1-input:7x7x320-output:7x7x1280",
        "Logits-input:7x7x1280-output:1000",
    ]
    lut = LatencyModel(table, space)
    for arch in archs:
        keys = fixed + [_mb_key(layer, op) for layer, op in zip(space.layers, arch.ops, strict=True) if op != "zero"]
        direct_ms = math.fsum(raw[key]["mean"] for key in keys)
        assert table.network_latency(arch) == pytest.approx(direct_ms * 1000, rel=1e-12)
        indices = [layer.candidate_names.index(op) for layer, op in zip(space.layers, arch.ops, strict=True)]
        assert lut.arch_latency_us(indices) == pytest.approx(direct_ms * 1000, rel=1e-12)


def test_spaces_shape_and_spec_round_trip() -> None:
    for space in (proxylessnas_space(), ofa_mbv3_space(), proxylessnas_space(32), ofa_mbv3_space(32)):
        again = SpaceSpec.from_text(space.to_yaml())
        assert again == space and again.spec_hash == space.spec_hash
        assert space.name in SPACE_SOURCES
    pxl, ofa = proxylessnas_space(), ofa_mbv3_space()
    assert len(pxl.layers) == 22 and pxl.final_hw == (7, 7) and "pool" not in pxl.fixed_entries()
    assert list(ofa.fixed_entries()) == ["stem", "head", "pool", "mix", "fc"]
    # zero only where a stage keeps its depth: not on a stage's first layer (ProxylessNAS), nor its first two (OFA)
    assert [("zero" in la.candidate_names) for la in pxl.layers[:6]] == [False, False, True, True, True, False]
    assert [("zero" in la.candidate_names) for la in ofa.layers[1:6]] == [False, False, True, True, False]
    # OFA's expand ratio becomes the middle channel count; the stage's se / h-swish pick the op
    assert ofa.layers[9].entry("k5_e4") == Entry("mb3hs", 48, 96, 28, 28, 2, 5, 192)
    assert ofa.layers[13].entry("k3_e6") == Entry("mb3sehs", 96, 136, 14, 14, 1, 3, 576)
    with pytest.raises(ArchitectureError, match="zero"):
        pxl.decode(",".join(["k3_e1", "zero"] + ["k3_e3"] * 20))
    # a zero layer has no entry and costs nothing
    arch = pxl.decode(",".join(["k3_e1", "k3_e3", "zero"] + ["k3_e3"] * 19))
    assert len(pxl.entries_of(arch)) == 3 + 21 and all(not e.is_free for e in pxl.entries_of(arch))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(block="resnet"), "block"),
        (lambda d: d["stages"][1].update(se=True), r"stages\[1\]"),  # se belongs to mb3
        (lambda d: d["stages"][1].update(min_depth=0), r"stages\[1\].min_depth"),
        (lambda d: d["stages"][0].update(candidates=["zero"]), "zero"),  # a layer left without a real op
        (lambda d: d["head"].update(pool="no"), "head.pool"),
    ],
)
def test_bad_spec_fields_are_named(change, field: str) -> None:
    data = proxylessnas_space().to_dict()
    change(data)
    with pytest.raises(SpecError, match=field):
        SpaceSpec.from_dict(data)


def test_zero_keeps_the_shape() -> None:
    assert Entry("zero", 24, 24, 8, 8).is_free
    with pytest.raises(ValueError, match="zero op keeps the shape"):
        Entry("zero", 16, 24, 8, 8)
    with pytest.raises(ValueError, match="zero op keeps the shape"):
        Entry("zero", 24, 24, 8, 8, stride=2)


def test_match_latencies_pairs_this_machine_with_the_published_tables() -> None:
    from searcher.lut import synthetic_table

    pixel1 = reference_latencies((REFERENCE_LUTS / TABLES["proxylessnas-mobile"]).read_text())
    here = synthetic_table(proxylessnas_space(), device="here")
    match = match_latencies(here, pixel1)
    assert len(match.matched) == 72 and match.unmatched == 0
    first = match.matched[0]
    assert first.right_us == pixel1[first.entry.proxyless_key()]
    assert first.left_us == here.entries[first.key]["median"]
    # against another space's table: nothing in common, everything counted
    note10 = reference_latencies((REFERENCE_LUTS / TABLES["ofa-mbv3"]).read_text())
    other = match_latencies(here, {**note10, "Foo-bar": 1.0})
    assert other.matched == [] and other.unmatched == 72 + 96 + 1 and "Foo-bar" in other.unmatched_right


@pytest.mark.parametrize("space_name", list(TABLES))
def test_export_to_the_published_formats(space_name: str) -> None:
    """An hwlut LUT of these spaces written as ProxylessNAS/OFA YAML and HW-NAS-Bench YAML reads back whole."""
    from lut_store.formats import Table, TableRow
    from searcher.lut import synthetic_table

    space = load_space(space_name)
    lut = synthetic_table(space)
    table = Table("hwlut", [TableRow(k, parse_key(k), s["median"], s) for k, s in lut.entries.items()], space=space)
    fmt = "ofa" if space_name == "ofa-mbv3" else "proxyless"
    for out_fmt in (fmt, "hwnasbench"):
        text, left_out = write_table(table, out_fmt)
        assert left_out == []
        back = read_table(text, out_fmt)
        assert [r.entry for r in back.rows] == [r.entry for r in table.rows]
        pairs = zip(table.rows, back.rows, strict=True)
        assert all(math.isclose(b.latency_us, a.latency_us, rel_tol=1e-12) for a, b in pairs)
    # the Cai YAML of this space has the published table's key set
    ref = set(yaml.safe_load((REFERENCE_LUTS / TABLES[space_name]).read_text()))
    assert set(yaml.safe_load(write_table(table, fmt)[0])) == ref


def test_proxy_search_in_the_proxylessnas_space_runs_end_to_end(tmp_path: Path) -> None:
    """hwlut search at 32x32 in the ProxylessNAS space; the result's latency is the LUT sum of its ops."""
    from typer.testing import CliRunner

    from hwlut.cli import app
    from searcher.lut import synthetic_table

    space = proxylessnas_space(32)
    lut = synthetic_table(space, device="tiny")
    lut.save(tmp_path / "lut.json")
    out = tmp_path / "out"
    args = ["search", "--lut", str(tmp_path / "lut.json"), "--proxy", "digits", "--proxy-samples", "20"]
    args += ["--epochs", "2", "--warmup", "1", "--max-steps", "1", "--batch-size", "4", "--samples", "2"]
    result = CliRunner().invoke(app, [*args, "--width-mult", "0.25", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "search_result.json").read_text())
    arch = doc["argmax"]["arch"]
    assert space.decode(arch)  # an architecture of the space
    assert doc["argmax"]["latency_us"] == pytest.approx(lut.network_latency(arch), rel=1e-9)


def test_space_show_names_the_source_and_the_published_keys() -> None:
    from typer.testing import CliRunner

    from hwlut.cli import app

    result = CliRunner().invoke(app, ["space", "show", "proxylessnas-mobile", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert "ProxylessNAS" in doc["source"] and doc["spec"]["block"] == "mb"
    keys = {item["proxyless"] for item in doc["entries"]}
    assert keys == set(yaml.safe_load((REFERENCE_LUTS / TABLES["proxylessnas-mobile"]).read_text()))


def test_search_reads_a_published_table_only_with_its_space() -> None:
    from searcher.lut import LutSourceError, load_lut_file

    path = REFERENCE_LUTS / TABLES["ofa-mbv3"]
    with pytest.raises(LutSourceError, match="--space"):
        load_lut_file(path)
    with pytest.raises(LutSourceError, match="outside the space"):
        load_lut_file(path, proxylessnas_space())
    table, source = load_lut_file(path, ofa_mbv3_space())
    assert table.complete and source.kind == "file" and len(table.entries) == 96


@pytest.mark.slow
def test_profile_a_few_entries_of_the_proxylessnas_space(tmp_path: Path) -> None:
    """`hwlut profile --space proxylessnas-mobile` measures MBConv entries on this machine (onnxruntime)."""
    import subprocess
    import sys

    from searchspace import LatencyTable

    out = tmp_path / "pxl.json"
    args = ["profile", "--space", "proxylessnas-mobile", "-r", "32", "--limit", "2", "--time-cap", "0.2"]
    args += ["--slice", "0.01", "--min-passes", "3", "--warmup-runs", "2", "--warmup-time", "0.05", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", "from hwlut.cli import main; main()", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = LatencyTable.load(out)
    space = proxylessnas_space(32)
    assert table.space == space and not table.errors
    assert {parse_key(k) for k in table.entries} == set(space.distinct_entries()[:2])
    assert {parse_key(k).op for k in table.entries} == {"conv", "mb"}
    assert all(stats["median"] > 0 for stats in table.entries.values())
