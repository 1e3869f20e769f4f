"""``hwlut lut show``: the layers × candidates grid (ms) and the summary figures of real and hand-made LUTs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from fakes import QUICK_CFG
from typer.testing import CliRunner

from hwlut.cli import app
from profiler.local import profile_space
from profiler.report import layer_grid, lut_summary
from profiler.runtimes import make_runtime
from searchspace import LatencyTable, load_space

QUICK = QUICK_CFG
WIDE = {"COLUMNS": "220"}


def _show(*args: str) -> object:
    return CliRunner().invoke(app, ["lut", "show", *args], env=WIDE)


@pytest.fixture(scope="module")
def real_lut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three entries of FBNet-32 measured with onnxruntime: a layer-0 block, the stem and the classifier."""
    space = load_space("fbnet", resolution=32)
    fixed = space.fixed_entries()
    entries = [fixed["stem"], space.layers[0].entry("k3_e1"), fixed["fc"]]
    out = tmp_path_factory.mktemp("show") / "lut.json"
    profile_space(space, make_runtime("ort", threads=1), out, QUICK, entries=entries, sentinel=fixed["fc"])
    return out


@pytest.mark.slow
def test_show_json_of_a_real_ort_lut(real_lut: Path) -> None:
    table = LatencyTable.load(real_lut)
    result = _show(str(real_lut), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    s = doc["summary"]
    total = len(table.space.distinct_entries())
    assert (s["entries"], s["total"], s["missing"]) == (3, total, total - 3)
    assert s["missing_keys"] == table.missing() and not s["complete"] and s["errors"] == {}
    assert s["runtime"]["runtime"] == "ort" and s["runtime"]["threads"] == 1
    assert s["overhead_us"] == table.overhead_us and s["overhead_us"] > 0
    rels = [e["ci_rel"] for e in table.entries.values()]
    assert s["ci_rel_median"] == pytest.approx(statistics.median(rels)) and s["ci_rel_max"] == max(rels)
    assert sum(s["stop_reasons"].values()) == 3 and set(s["stop_reasons"]) <= {"ci", "time_cap"}
    assert s["passes"] >= QUICK.min_passes and isinstance(s["passes_redone"], int)
    assert s["sentinel_max_abs_drift"] is not None and s["sentinel_key"] == table.space.fixed_entries()["fc"].key
    session = table.provenance["sessions"][0]
    assert s["sessions"] == 1 and s["wall_s"] == session["wall_s"] > 0
    assert 0 < s["inference_s"] <= s["wall_s"] and s["inference_share"] == pytest.approx(s["inference_s"] / s["wall_s"])
    assert s["cache_eviction_s"] is None and s["cache_eviction_share"] is None  # warm: nothing evicted
    for name in ("export_s", "load_s", "save_s", "saves"):
        assert session[name] >= 0, name

    block = table.space.layers[0].entry("k3_e1").key
    layer0 = doc["grid"]["layers"][0]
    assert layer0["keys"]["k3_e1"] == block
    assert layer0["latency_us"]["k3_e1"] == table.entries[block]["median"]
    assert layer0["latency_us"]["k5_e6"] is None  # not measured
    assert len(doc["grid"]["layers"]) == 22 and doc["grid"]["candidates"][-1] == "skip"
    fixed = {row["name"]: row for row in doc["fixed"]}
    stem = table.space.fixed_entries()["stem"].key
    assert fixed["stem"]["latency_us"] == table.entries[stem]["median"] and fixed["head"]["latency_us"] is None


@pytest.mark.slow
def test_show_table_of_a_real_ort_lut(real_lut: Path) -> None:
    table = LatencyTable.load(real_lut)
    result = _show(str(real_lut))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fbnet-32 · ort" in out and "median latency, ms" in out
    block = table.space.layers[0].entry("k3_e1").key
    assert f"{table.entries[block]['median'] / 1000:.3f}" in out  # the layer-0 cell, in ms
    fc = table.space.fixed_entries()["fc"].key
    assert fc in out and f"{table.entries[fc]['median'] / 1000:.3f}" in out
    assert f"3/{len(table.space.distinct_entries())} entries (partial)" in out
    assert f"{table.overhead_us:.2f} µs per invocation" in out
    assert "half-width median ±" in out and "sentinel drift max" in out and "inside inference calls" in out
    assert "… and" in out and "--all-missing" in out
    every = _show(str(real_lut), "--all-missing").stdout
    assert all(key in every for key in table.missing())


def test_show_a_handmade_lut_with_an_error_and_no_provenance(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    entries = space.distinct_entries()
    failed = space.layers[3].entry("k5_e6").key
    table = LatencyTable(
        space=space,
        entries={e.key: {"median": 100.0 + i} for i, e in enumerate(entries) if e.key != failed},
        errors={failed: "RuntimeError: boom\nmore lines"},
    )
    path = tmp_path / "hand.json"
    table.save(path)
    summary = lut_summary(table)
    assert (summary["missing"], summary["missing_keys"], summary["errors"]) == (
        1,
        [failed],
        {failed: table.errors[failed]},
    )
    assert summary["runtime"] is None and summary["ci_rel_median"] is None and summary["wall_s"] is None
    assert summary["stop_reasons"] == {"unknown": len(entries) - 1}
    row = layer_grid(table)["layers"][3]
    assert row["errors"] == {"k5_e6": table.errors[failed]} and row["latency_us"]["k5_e6"] is None

    result = _show(str(path))
    assert result.exit_code == 0, result.output
    assert "err" in result.stdout and "runtime   not recorded" in result.stdout
    assert f"error     {failed}: RuntimeError: boom" in result.stdout and "more lines" not in result.stdout
    assert f"{(100.0 + 1) / 1000:.3f}" in result.stdout  # the first block entry, 101 µs


def test_show_refuses_a_file_that_is_not_an_hwlut_lut(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "something-else"}))
    result = _show(str(path))
    assert result.exit_code == 2
    assert "not an hwlut LUT" in result.output


def _validated_lut(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A hand-made LUT that a (constructed) validation has written its figures and calibration into."""
    from profiler.validate import ValidationResult, write_calibration
    from searchspace.accuracy import NetworkRow, accuracy_report

    space = load_space("fbnet", resolution=32)
    table = LatencyTable(space=space, entries={e.key: {"median": 50.0} for e in space.distinct_entries()})
    rows = [NetworkRow(f"net{i}", measured_us=1.1 * (1000.0 + 100 * i) + 50.0, raw_us=1000.0 + 100 * i, entries=25)
            for i in range(8)]  # fmt: skip
    report = accuracy_report(rows, kind="linear", split_seed=3)
    result = ValidationResult(report, (), seed=3, n=8, named=(), lut_cache_mode="warm", runtime={"runtime": "ort"})
    path = tmp_path / "validated.json"
    write_calibration(table, result, path)
    prov = LatencyTable.load(path).provenance
    return path, prov["accuracy"], prov["calibration"]


def test_show_prints_the_accuracy_figures_and_calibration_a_validation_stored(tmp_path: Path) -> None:
    path, accuracy, calibration = _validated_lut(tmp_path)
    assert calibration["slope"] == pytest.approx(1.1) and calibration["intercept_us"] == pytest.approx(50.0)

    doc = json.loads(_show(str(path), "--json").stdout)
    assert doc["accuracy"] == accuracy == doc["summary"]["accuracy"]
    assert doc["calibration"] == calibration == doc["summary"]["calibration"]
    assert doc["accuracy"]["raw"]["n"] == 8 and doc["accuracy"]["calibrated"]["within_5"] == 1.0

    result = _show(str(path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "accuracy  8 validation networks, seed 3" in out
    raw = accuracy["raw"]
    lb10 = accuracy["intervals"]["raw"]["within_10"]["lower95"]
    assert f"raw LUT sum              n={raw['n']:<3} ±5% {raw['within_5']:6.1%}" in out
    assert f"±10% {raw['within_10']:6.1%} (≥{lb10:.0%})" in out
    assert f"MAPE {raw['mape']:5.2f}%" in out and "calibrated, out of fold" in out
    assert "calibration chosen by 8-fold cross-validation (seed 3): linear" in out
    assert "serves linear: 1.1000 x sum +50.0 µs" in out
    assert "verdict   ROUGH" in out and "8 networks, 8 within ±10% (calibrated)" in out
    assert doc["summary"]["verdict"]["level"] == "rough"


def test_show_without_a_validation_prints_no_accuracy(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    path = tmp_path / "plain.json"
    LatencyTable(space=space, entries={e.key: {"median": 50.0} for e in space.distinct_entries()}).save(path)
    doc = json.loads(_show(str(path), "--json").stdout)
    assert doc["accuracy"] is None and doc["calibration"] is None
    out = _show(str(path)).stdout
    assert "accuracy" not in out and "calibration" not in out
    assert "verdict   NOT VALIDATED" in out and "no validation against whole networks" in out


def test_results_printed_into_a_pipe_are_120_columns_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich would cut a piped table at 80 columns; $COLUMNS still wins."""
    from hwlut.cli.console import PIPED_WIDTH, out_console

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert out_console().width == PIPED_WIDTH == 120
    monkeypatch.setenv("COLUMNS", "100")
    assert out_console().width == 100


def test_show_of_a_server_that_is_not_there_names_it_and_exits_1() -> None:
    result = _show("--device", "box", "--server", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "http://127.0.0.1:9" in result.output and "Traceback" not in result.output
