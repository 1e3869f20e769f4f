"""``hwlut plot lut|compare|accuracy`` and the figures they share with the dashboard (searchspace.figures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_dashboard import SPACE, _accuracy, cost_us, table
from typer.testing import CliRunner

from hwlut.cli import app
from searchspace import LatencyTable, fbnet_space
from searchspace.figures import accuracy_scatter, compare, heatmap


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plot")
    out = {}
    for device in ("alpha", "beta"):
        out[device] = root / f"{device}.json"
        table(device).save(out[device])
    out["accuracy"] = root / "validation.json"
    out["accuracy"].write_text(json.dumps(_accuracy(table("alpha"))))
    return out


def _image(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
    return img


def test_heatmap_is_the_lut_in_ms() -> None:
    hm = heatmap(table("alpha"))
    assert len(hm.layers) == 22 and len(hm.candidates) == 9 and hm.filled == 22 * 9
    for i, layer in enumerate(SPACE.layers):
        for j, cand in enumerate(hm.candidates):
            assert hm.values[i][j] == pytest.approx(cost_us(layer.entry(cand), "alpha") / 1000)
            assert hm.ci_low[i][j] < hm.values[i][j] < hm.ci_high[i][j]
    assert [name for name, _, _ in hm.fixed] == ["stem", "head", "pool", "fc"]


def test_a_missing_entry_is_a_gap_not_a_zero() -> None:
    lut = table("alpha")
    gone = SPACE.layers[3].entry("k5_e6").key
    del lut.entries[gone]
    hm = heatmap(lut)
    j = hm.candidates.index("k5_e6")
    assert hm.values[3][j] is None and hm.keys[3][j] == gone
    shared = sum(k == gone for row in hm.keys for k in row)  # layers of one shape share their entries
    assert shared == 3 and hm.filled == 22 * 9 - shared


def test_compare_ranks_ratios_and_conditions() -> None:
    cmp = compare(table("alpha"), table("beta"))
    for i, layer in enumerate(SPACE.layers):
        fast = tuple(
            min(layer.candidate_names, key=lambda c, d=d: cost_us(layer.entry(c), d)) for d in ("alpha", "beta")
        )
        assert cmp.fastest[i] == fast
        assert (i in cmp.differing) == (fast[0] != fast[1])
    assert cmp.ratio[0][0] == pytest.approx(1.3, rel=1e-3)
    assert all(r is None or -1 <= r <= 1 for r in cmp.spearman)
    assert "runtime.threads: 1 != 4" in cmp.conditions
    assert compare(table("alpha"), table("alpha")).conditions == ()
    with pytest.raises(ValueError, match="different spaces"):
        compare(table("alpha"), LatencyTable(fbnet_space(64), {}))


def test_accuracy_scatter_keeps_the_reports_points() -> None:
    doc = _accuracy(table("alpha"))
    sc = accuracy_scatter(doc["report"])
    rows = doc["report"]["rows"]
    assert sc.series["raw LUT sum"] == [(r["measured_us"] / 1000, r["raw_us"] / 1000) for r in rows]
    assert len(sc.series["calibrated, held out"]) == doc["report"]["held_out"]
    # the report's own intervals (issue 14) come along; no verdict unless the caller gives one
    assert sc.verdict is None and sc.intervals == doc["report"]["intervals"] and "raw" in sc.intervals


def test_plot_commands_write_pngs(files: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["plot", "lut", str(files["alpha"]), "--out", str(tmp_path / "lut.png")])
    assert r.exit_code == 0, r.output
    assert _image(tmp_path / "lut.png").std() > 0.05  # not a blank canvas

    r = runner.invoke(
        app, ["plot", "compare", str(files["alpha"]), str(files["beta"]), "--out", str(tmp_path / "c.png")]
    )
    assert r.exit_code == 0, r.output
    _image(tmp_path / "c.png")
    differing = compare(table("alpha"), table("beta")).differing
    assert r.stderr.count("layer ") == len(differing) > 0
    assert "warning: measured differently: runtime.threads: 1 != 4" in r.stderr

    r = runner.invoke(app, ["plot", "accuracy", str(files["accuracy"]), "--out", str(tmp_path / "acc.png")])
    assert r.exit_code == 0, r.output
    _image(tmp_path / "acc.png")


def _said(output: str) -> str:
    """The output's words, out of Rich's box (which wraps lines)."""
    return " ".join(output.replace("│", " ").split())


def test_plot_refuses_what_it_cannot_draw(files: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["plot", "lut", "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "FILE/--device" in _said(r.output)
    other = tmp_path / "other.json"
    LatencyTable(fbnet_space(64), {}).save(other)
    r = runner.invoke(app, ["plot", "compare", str(files["alpha"]), str(other), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "different spaces" in _said(r.output)
    r = runner.invoke(app, ["plot", "accuracy", str(files["alpha"]), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "no accuracy report rows" in _said(r.output)
    assert not (tmp_path / "x.png").exists()


def test_a_reports_verdict_and_intervals_reach_the_png(tmp_path: Path) -> None:
    from searchspace.figures import interval_text, render_png, verdict_text

    doc = _accuracy(table("alpha"))
    ints = {"within_10": {"k": 11, "n": 12, "lower95": 0.66}, "mape": {"low": 2.0, "high": 3.5}}
    sc = accuracy_scatter({**doc["report"], "intervals": {"raw": ints}}, {"level": "rough", "reasons": ["few"]})
    assert verdict_text(sc.verdict) == "rough: few" and verdict_text(None) is None
    assert interval_text(sc.intervals["raw"]) == "±10%: 11/12, ≥66%; MAPE 2–3.5"
    assert interval_text({}) is None
    _image(render_png(sc, tmp_path / "acc.png"))
