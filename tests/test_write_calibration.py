"""``hwlut validate --write-calibration`` never loses a LUT file's evidence unless asked, and says what it replaced."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeCache, FixedRuntime
from typer.testing import CliRunner

from hwlut.cli import app
from profiler.export import network_target
from profiler.validate import validation_archs
from searchspace import LatencyTable, load_space

FAST = ["--precision", "0.5", "--time-cap", "1", "--slice", "0", "--warmup-time", "0", "--warmup-runs", "1"]


def test_write_calibration_refuses_to_lose_evidence_and_says_what_it_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import profiler.validate
    from hwlut.cli import profile as profile_cmd

    space = load_space("fbnet", resolution=32)
    archs = validation_archs(space, 12, seed=5)
    keys = list(dict.fromkeys(e.key for a in archs for e in space.entries_of(a)))
    table = LatencyTable(
        space=space,
        entries={k: {"median": 20.0 + i} for i, k in enumerate(keys)},
        overhead_us=2.0,
        provenance={"runtime": {"runtime": "fake", "threads": 1}},
    )
    latencies = {network_target(space, a).label: 1.05 * table.network_latency(a) + 80.0 for a in archs}
    monkeypatch.setattr(profile_cmd, "runtime_from_options", lambda *a, **k: FixedRuntime(latencies=latencies))
    real = profiler.validate.validate_lut
    monkeypatch.setattr(profiler.validate, "validate_lut", lambda *a, **k: real(*a, **k, cache=FakeCache()))
    lut = tmp_path / "lut.json"
    table.save(lut)
    base = ["validate", "--lut", str(lut), "--runtime", "ort", "--seed", "5", "--write-calibration", *FAST]

    first = CliRunner().invoke(app, [*base, "--n", "12"], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    saved = LatencyTable.load(lut).provenance
    assert saved["accuracy"]["networks"] == 12 and saved["calibration"]["kind"] != "none"
    assert "and figures written to" in first.output and "replaced" not in first.output

    # Two networks: too few to calibrate, and a 12-network report would give way to a 2-network one.
    before = lut.read_bytes()
    few = CliRunner().invoke(app, [*base, "--n", "2"], env={"COLUMNS": "200"})
    assert few.exit_code == 2 and "left as it was" in few.output and "--replace" in few.output
    assert "would be removed" in few.output and "replaced by one of 2 networks" in few.output
    assert lut.read_bytes() == before

    forced = CliRunner().invoke(app, [*base, "--n", "2", "--replace"], env={"COLUMNS": "200"})
    assert forced.exit_code == 0, forced.output
    assert "removed calibration" in forced.output and "replaced accuracy report of 12 networks" in forced.output
    after = LatencyTable.load(lut).provenance
    assert "calibration" not in after and after["accuracy"]["networks"] == 2 and after["accuracy"]["chosen"] == "none"
