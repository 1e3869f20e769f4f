"""The calm gate of a build and the recheck of its worst entries, with real onnxruntime on FBNet-32.

A build gates each batch on a steady sentinel and records every gate in
``provenance["calm"]``; a zero wait turns the gate off; a LUT continued with
another calm setting is no mismatch. ``--recheck N`` re-measures exactly the N
entries with the widest CI or sentinel drift and records before / after.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import QUICK_CFG
from typer.testing import CliRunner

from hwlut.cli import app
from profiler.calm import KEEP_GATES, CalmSettings
from profiler.local import profile_space
from profiler.recheck import recheck_entries, worst_entries
from profiler.runtimes import make_runtime
from searchspace import LatencyTable, load_space

pytestmark = pytest.mark.slow

SPACE = load_space("fbnet", resolution=32)
ENTRIES = SPACE.distinct_entries()[:4]
QUICK_ARGS = ["--time-cap", "0.15", "--slice", "0.01", "--warmup-time", "0.05"]


def test_the_gate_runs_before_every_batch_is_recorded_and_a_zero_wait_turns_it_off(tmp_path: Path) -> None:
    ort = make_runtime("ort", threads=1)
    out = tmp_path / "lut.json"
    never = CalmSettings(threshold=1e-9, build_wait_s=0.05, batch_wait_s=0.02)  # no sentinel is that steady
    table = profile_space(SPACE, ort, out, QUICK_CFG, entries=ENTRIES[:2], batch_size=1, calm=never)
    calm = LatencyTable.load(out).provenance["calm"]
    assert [g["at"] for g in calm["gates"]] == ["batch 1", "batch 2"]
    assert calm["count"] == 2 and calm["not_calm"] == 2 and not any(g["calm"] for g in calm["gates"])
    assert calm["threshold"] == 1e-9 and all(g["rounds"] >= 1 and g["spread"] > 0 for g in calm["gates"])
    assert calm["waited_s"] == pytest.approx(sum(g["waited_s"] for g in calm["gates"]), abs=0.01)
    assert (calm["build_wait_s"], calm["batch_wait_s"]) == (0.05, 0.02)
    assert len(table.entries) == 2

    # continued with another calm setting: no mismatch, the totals go on, the newest settings are shown
    loose = CalmSettings(threshold=0.9, build_wait_s=5.0, batch_wait_s=5.0)
    profile_space(SPACE, ort, out, QUICK_CFG, entries=ENTRIES[:3], calm=loose)
    calm = LatencyTable.load(out).provenance["calm"]
    assert calm["count"] == 3 and calm["threshold"] == 0.9 and calm["gates"][-1]["at"] == "batch 1"
    assert calm["gates"][-1]["calm"] and calm["not_calm"] == 2  # a 90% spread is steady

    # a zero wait: no gate at all, the record is left as it was
    off = tmp_path / "off.json"
    profile_space(SPACE, ort, off, QUICK_CFG, entries=ENTRIES[:1], calm=CalmSettings.from_wait(0.0))
    assert "calm" not in LatencyTable.load(off).provenance
    assert CalmSettings.from_wait(30.0) == CalmSettings(0.05, 30.0, 10.0)
    assert KEEP_GATES >= 2


def test_recheck_measures_exactly_the_worst_entries_and_keeps_the_more_trusted_figure(tmp_path: Path) -> None:
    ort = make_runtime("ort", threads=1)
    out = tmp_path / "lut.json"
    profile_space(SPACE, ort, out, QUICK_CFG, entries=ENTRIES)
    table = LatencyTable.load(out)
    a, b, c, d = (e.key for e in ENTRIES)

    def widen(key: str, rel: float) -> None:  # a stored CI of ±rel around the median
        stats = table.entries[key]
        stats.update(ci_rel=rel, ci_low=stats["median"] * (1 - rel), ci_high=stats["median"] * (1 + rel))

    widen(a, 0.5)
    table.entries[b]["sentinel_factor"] = 1.3  # measured while the sentinel ran 30% off
    widen(c, 0.2)
    table.entries[d].update(ci_rel=0.0, ci_low=table.entries[d]["median"], ci_high=table.entries[d]["median"])
    assert worst_entries(table, 2) == [a, b]
    untouched = dict(table.entries[c])

    record = recheck_entries(table, out, ort, 2, calm=CalmSettings(0.9, 0.2, 0.1))
    assert [r["key"] for r in record["entries"]] == [a, b]
    saved = LatencyTable.load(out)
    assert saved.entries[c] == untouched  # not rechecked
    row_a = record["entries"][0]
    assert row_a["before_ci"][1] - row_a["before_ci"][0] > 0.9 * row_a["before_median"]  # the widened CI, kept aside
    assert row_a["kept"] == "after" and saved.entries[a]["median"] == row_a["after_median"]
    assert saved.entries[a]["ci_rel"] < 0.5 and "sentinel_factor" not in saved.entries[b]
    assert saved.provenance["recheck"]["entries"] == record["entries"] and record["runs"] == 1
    assert record["sentinel_reference_us"] > 0 and record["build_sentinel_reference_us"] > 0
    assert saved.provenance["calm"]["gates"][-1]["at"] == "recheck"

    # every entry: the one stored with a perfect (zero-width) CI keeps its figure, the new one is only recorded
    record = recheck_entries(saved, out, ort, 4, time_s=0.4)
    assert len(record["entries"]) == 4 and record["runs"] == 2 and record["time_cap_s"] == pytest.approx(0.1)
    row_d = next(r for r in record["entries"] if r["key"] == d)
    assert row_d["kept"] == "before" and LatencyTable.load(out).entries[d]["median"] == row_d["before_median"]


def _profile(*args: str) -> object:
    return CliRunner().invoke(app, ["profile", "--runtime", "ort", "-r", "32", *args], env={"COLUMNS": "200"})


def test_profile_cli_gates_rechecks_and_refuses_negative_values(tmp_path: Path) -> None:
    out = tmp_path / "lut.json"
    for option in ("--calm-wait", "--recheck", "--recheck-time", "--calm-threshold"):
        result = _profile("--out", str(out), option, "-1")
        assert result.exit_code == 2 and option in result.output, result.output
    assert not out.exists()
    for command in (["agent", "--token", "t"], ["quickstart", "--quick"]):  # the agent and quickstart share the option
        result = CliRunner().invoke(app, [*command, "--calm-wait", "-1"])
        assert result.exit_code == 2 and "--calm-wait" in result.output, result.output

    args = ["--limit", "2", *QUICK_ARGS, "--out", str(out), "--calm-wait", "0.2", "--recheck", "1"]
    result = _profile(*args)
    assert result.exit_code == 0, result.output
    assert "calm gate: 2 gate(s)" in result.output and "recheck: 1 entries" in result.output  # the build, the recheck
    prov = json.loads(out.read_text())["provenance"]
    assert prov["calm"]["build_wait_s"] == 0.2 and len(prov["recheck"]["entries"]) == 1

    again = _profile(*args[:-1], "2")  # nothing left to measure: only the recheck runs
    assert again.exit_code == 0, again.output
    prov = json.loads(out.read_text())["provenance"]
    assert prov["recheck"]["runs"] == 2 and len(prov["recheck"]["entries"]) == 2
    assert prov["calm"]["count"] == 3 and prov["calm"]["gates"][-1]["at"] == "recheck"  # no batch gate this time
