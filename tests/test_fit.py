"""``hwlut lut fit``: a LUT from whole-network latencies (searchspace.fit), on constructed additive devices."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from searchspace import LatencyTable, fbnet_space
from searchspace.fit import Design, FitError, NetworkData, apply_gauge, fit_entries, fit_table, read_networks

SPACE = fbnet_space(32)


@pytest.fixture(scope="module")
def design() -> Design:
    return Design.of(SPACE)


def _archs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [SPACE.sample(rng).encode() for _ in range(n)]


def _constructed(design: Design, seed: int = 0) -> np.ndarray:
    """An additive device's LUT (µs) that satisfies the gauge rule."""
    return apply_gauge(design, np.random.default_rng(seed).uniform(20.0, 900.0, len(design.entries)))


def test_design_counts_every_layer_and_the_fixed_part(design: Design) -> None:
    archs = _archs(5)
    a = design.matrix(archs)
    assert a.shape == (5, len(SPACE.distinct_entries()))
    assert np.all(a.sum(axis=1) == len(SPACE.layers) + len(design.fixed))
    for row, arch in zip(a, archs, strict=True):  # the same counts as the space's own entry list
        for entry in SPACE.entries_of(arch):
            assert row[design.entries.index(entry)] >= 1
    assert math.isclose(sum(design.fixed_weights), 1.0)
    assert design.mean_row().sum() == pytest.approx(len(SPACE.layers) + len(design.fixed))


def test_fit_recovers_a_constructed_additive_lut_exactly(design: Design) -> None:
    truth = _constructed(design)
    archs = _archs(400)
    y = design.matrix(archs) @ truth
    table, report = fit_table(SPACE, NetworkData.checked(archs, y, "constructed"), folds=4)
    fitted = np.array([table.latency(e) for e in design.entries])
    np.testing.assert_allclose(fitted, truth, rtol=1e-6, atol=1e-3)
    assert report["in_sample"]["max_abs_error_pct"] < 1e-4
    assert report["cross_validated"]["max_abs_error_pct"] < 1e-3  # additive: held-out networks come back too
    assert table.provenance["method"] == "fitted from 400 networks"
    assert table.complete and not table.missing()
    assert "cheapest candidate is 0" in report["gauge"]


def test_gauge_rule_holds_and_keeps_every_network_sum(design: Design) -> None:
    rng = np.random.default_rng(3)
    archs = _archs(300, seed=3)
    a = design.matrix(archs)
    noisy = a @ _constructed(design, seed=3) * rng.uniform(0.9, 1.1, len(archs))  # not additive: the rule still holds
    raw = fit_entries(a, noisy)
    gauged = apply_gauge(design, raw)
    np.testing.assert_allclose(a @ gauged, a @ raw, rtol=1e-9)
    assert np.all(gauged >= 0)
    for cols in design.groups:
        assert gauged[list(cols)].min() == 0.0
    fixed = gauged[list(design.fixed)]
    np.testing.assert_allclose(fixed / fixed.sum(), design.fixed_weights, rtol=1e-9)
    # another LUT with the same network sums (a constant moved between a layer group and the fixed part) gauges alike
    shifted = raw.copy()
    shifted[list(design.groups[2])] += 7.0
    shifted[design.fixed[0]] -= 7.0 * design.group_layers[2]
    np.testing.assert_allclose(apply_gauge(design, shifted), gauged, atol=1e-6)


@pytest.mark.parametrize("bad", ["-3.5", "nan", "", "inf", "0"])
def test_bad_latencies_are_refused_naming_the_row(tmp_path: Path, bad: str) -> None:
    archs = _archs(4)
    path = tmp_path / "nets.csv"
    path.write_text("arch,latency_ms\n" + "".join(f'"{a}",{bad if i == 2 else 12.5}\n' for i, a in enumerate(archs)))
    with pytest.raises(FitError, match=r"row 3 \(") as info:
        read_networks(path)
    assert archs[2] in str(info.value)


def test_read_networks_help_json_and_its_errors(tmp_path: Path) -> None:
    archs = _archs(3)
    path = tmp_path / "help.json"
    path.write_text(json.dumps({"unit": "ms", "archs": archs, "devices": {"dev": [1.0, 2.0, None]}}))
    with pytest.raises(FitError, match=r"\[dev\]: row 3 .* None"):
        read_networks(path, "dev")
    with pytest.raises(FitError, match="--device: 'other' is not in"):
        read_networks(path, "other")
    path.write_text(json.dumps({"unit": "ms", "archs": archs, "devices": {"dev": [1.0, 2.0, 3.0]}}))
    assert read_networks(path, "dev").latency_us.tolist() == [1000.0, 2000.0, 3000.0]
    bad_arch = tmp_path / "bad.csv"
    bad_arch.write_text("arch,latency_us\nk3_e1,5\n")
    with pytest.raises(FitError, match="row 1: architecture: expected 22 ops"):
        Design.of(SPACE).matrix(read_networks(bad_arch).archs)


def test_cli_fit_writes_an_importable_lut(tmp_path: Path, design: Design) -> None:
    from hwlut.cli import app

    truth = _constructed(design, seed=5)
    archs = _archs(200, seed=5)
    y_ms = design.matrix(archs) @ truth / 1000.0
    data = tmp_path / "nets.csv"
    data.write_text("arch,latency_ms\n" + "".join(f'"{a}",{float(v)!r}\n' for a, v in zip(archs, y_ms, strict=True)))
    out = tmp_path / "fitted.json"
    runner = CliRunner()
    done = runner.invoke(app, ["lut", "fit", str(data), "--out", str(out), "--device", "box", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["networks"] == 200 and report["cross_validated"]["spearman"] > 0.9999
    table = LatencyTable.load(out)
    np.testing.assert_allclose([table.latency(e) for e in design.entries], truth, rtol=1e-5, atol=1e-2)
    env = {"HWLUT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    imported = runner.invoke(app, ["lut", "import", str(out), "--device", "box"], env=env)
    assert imported.exit_code == 0, imported.output
    back = tmp_path / "back.json"
    assert runner.invoke(app, ["lut", "export", "--device", "box", "--out", str(back)], env=env).exit_code == 0
    doc = json.loads(back.read_text())
    assert doc["provenance"]["method"] == "fitted from 200 networks"
    assert doc["provenance"]["fit"]["gauge"].startswith("min0-fixed-macs")
    # a negative latency: refused, the row named, nothing written
    data.write_text("arch,latency_ms\n" + f'"{archs[0]}",1.0\n"{archs[1]}",-2.0\n')
    bad = runner.invoke(app, ["lut", "fit", str(data), "--out", str(tmp_path / "no.json")])
    assert bad.exit_code == 2 and "row 2 (" in re.sub(r"[\s│]+", " ", bad.output)
    assert not (tmp_path / "no.json").exists()
