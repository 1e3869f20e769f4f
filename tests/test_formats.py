"""LUT file formats: the real phone tables and hwlut's own survive a round trip, value for value."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from testdata import REFERENCE_LUTS

from lut_store.formats import (
    CSV_COLUMNS,
    FormatError,
    Table,
    TableRow,
    detect_format,
    ofa_entry,
    read_table,
    write_table,
)
from searchspace import Entry, LatencyTable, fbnet_space
from searchspace.fields import LATENCY_FIELDS, MAX_LATENCY_US


def _hwlut_table() -> LatencyTable:
    space = fbnet_space(32)
    entries = {
        e.key: {"median": 1.0 + i / 7, "mean": 1.1 + i / 3, "std": 0.01 * i, "count": 20 + i, "stop_reason": "ci"}
        for i, e in enumerate(space.distinct_entries())
    }
    return LatencyTable(
        space=space,
        entries=entries,
        device={"name": "d"},
        provenance={"runtime": "ort"},
        overhead_us=12.5,
        complete=True,
    )


@pytest.mark.parametrize(
    ("name", "fmt", "mapped"), [("ofa_note10_224.yaml", "ofa", 96), ("proxylessnas_mobile_trim.yaml", "proxyless", 72)]
)
def test_reference_tables_round_trip(name: str, fmt: str, mapped: int) -> None:
    source = (REFERENCE_LUTS / name).read_text()
    assert detect_format(source, name) == fmt
    table = read_table(source)
    assert len(table.rows) - len(table.unmapped()) == mapped
    out, left_out = write_table(table, fmt)
    assert left_out == []
    original, again = yaml.safe_load(source), yaml.safe_load(out)
    assert list(again) == list(original) and again == original
    # through CSV (µs) and back, no row is lost and the latencies stay
    back = read_table(write_table(table, "csv")[0], "csv")
    assert [(r.key, r.entry, r.latency_us) for r in back.rows] == [(r.key, r.entry, r.latency_us) for r in table.rows]
    for row in table.rows:
        assert row.latency_us == row.source["mean"] * 1000


def test_ofa_keys() -> None:
    key = "expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:5-stride:2-idskip:0-se:0-hs:0"
    assert ofa_entry(key) == Entry("mb3", 24, 32, 112, 112, 2, 5, 144)  # OFA's expand is the middle channels
    assert ofa_entry(key.replace("se:0", "se:1")) == Entry("mb3se", 24, 32, 112, 112, 2, 5, 144)
    with pytest.raises(FormatError, match="se and hs flags"):  # a key of the grammar's ops that does not parse
        ofa_entry(key.replace("se:0", "se:2"))
    assert ofa_entry("final_expand_layer-input:7x7x160-output:7x7x960") is None  # another op: a foreign row
    assert ofa_entry("Conv_2-input:1x1x1152-output:1x1x1536") == Entry("mix", 1152, 1536, 1, 1)
    # an hwlut entry written as OFA and read back is itself
    table = Table(
        "hwlut",
        [
            TableRow(
                Entry("tbs", 24, 32, 112, 112, 2, 5, 6).key,
                Entry("tbs", 24, 32, 112, 112, 2, 5, 6),
                1500.0,
                {"median": 1500.0},
            )
        ],
    )
    back = read_table(write_table(table, "ofa")[0], "ofa")
    assert back.rows[0].entry == table.rows[0].entry and back.rows[0].latency_us == 1500.0


def test_hwlut_json_round_trip_is_exact() -> None:
    lut = _hwlut_table()
    text = json.dumps(lut.to_dict())
    table = read_table(text)
    assert table.format == "hwlut" and table.space == lut.space
    assert json.loads(write_table(table, "hwlut")[0]) == lut.to_dict()
    via_csv = read_table(write_table(table, "csv")[0])
    assert {r.entry.key: r.stats for r in via_csv.rows} == lut.entries


def test_hwnasbench_round_trip() -> None:
    lut = _hwlut_table()
    table = read_table(json.dumps(lut.to_dict()))
    text, left_out = write_table(table, "hwnasbench")
    assert left_out == []
    doc = yaml.safe_load(text)
    assert all(k.startswith(("ConvBlock_", "Skip_", "ConvNorm_", "AvgP_", "FC_")) for k in doc)
    back = read_table(text)
    assert back.format == "hwnasbench"
    assert {r.entry.key: r.latency_us for r in back.rows} == pytest.approx(
        {k: v["median"] for k, v in lut.entries.items()}
    )
    assert yaml.safe_load(write_table(back, "hwnasbench")[0]) == doc


@pytest.mark.parametrize(
    ("text", "fmt", "field"),
    [
        ("key,latency_us\ntbs_h8_w8_cin8_cout8_s1_k3_e1_g1,-1\n", "csv", "latency_us"),
        ("key,latency_us\ntbs_h8_w8_cin8_cout8_s1_k3_e1_g1,inf\n", "csv", "latency_us"),
        ("key,latency_us\ntbs_h8_w8_cin8_cout8_s1_k3_e1_g1,abc\n", "csv", "latency_us"),
        ("key,latency_us\ntbs_h8_w8_cin8_cout8_s1_k2_e1_g1,1\n", "csv", "key"),
        ("nokey\n1\n", "csv", "key"),
        ("Conv-input:8x8x3-output:8x8x8: {count: 1, mean: .nan, var: 0}\n", "proxyless", "mean"),
        ("Conv-input:8x8x3-output:8x8x8: {count: 1, var: 0}\n", "proxyless", "mean"),
        ("ConvBlock_H8_W8_Cin8_Cout8_exp1_kernel3_stride1_group1: -3\n", "hwnasbench", "entries"),
    ],
)
def test_bad_files_name_the_field(text: str, fmt: str, field: str) -> None:
    with pytest.raises(FormatError, match=field):
        read_table(text, fmt)


def test_csv_columns_and_latency_checks_come_from_the_stat_registry() -> None:
    assert [c for c in CSV_COLUMNS if c.endswith("_us") and c != "latency_us"] == [f"{n}_us" for n in LATENCY_FIELDS]
    too_slow = f"key,latency_us\ntbs_h8_w8_cin8_cout8_s1_k3_e1_g1,{MAX_LATENCY_US * 2}\n"
    with pytest.raises(FormatError, match="latency_us: expected a finite latency"):
        read_table(too_slow, "csv")


def test_latency_values_are_not_changed_by_units() -> None:
    # ms -> µs -> the source record: the exported value is the stored original, not a recomputation
    value = 0.1 + 0.2
    table = read_table(yaml.safe_dump({"Conv-input:8x8x3-output:8x8x8": {"count": 3, "mean": value, "var": 0.5}}))
    assert yaml.safe_load(write_table(table, "proxyless")[0])["Conv-input:8x8x3-output:8x8x8"]["mean"] == value
    assert math.isclose(table.rows[0].latency_us, value * 1000)
