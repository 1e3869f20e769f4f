"""The accuracy maths of :mod:`searchspace.accuracy` on constructed data: known errors give known figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from profiler.plots import plot_report
from searchspace import LatencyTable, fbnet_space
from searchspace.accuracy import (
    AccuracyReport,
    Calibration,
    NetworkRow,
    accuracy_report,
    error_pct,
    figures,
    fit_calibration,
    overhead_prediction,
    split_indices,
)


def _rows(measured: list[float], raw: list[float], entries: int = 26) -> list[NetworkRow]:
    return [NetworkRow(f"net{i}", m, r, entries) for i, (m, r) in enumerate(zip(measured, raw, strict=True))]


MEASURED = [1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0, 4500.0, 5000.0, 5500.0]


def test_seven_percent_over_everywhere() -> None:
    fig = figures([1.07 * m for m in MEASURED], MEASURED)
    assert fig.n == 10
    assert fig.within_10 == 1.0 and fig.within_5 == 0.0
    assert fig.mape == pytest.approx(7.0) and fig.rmspe == pytest.approx(7.0)
    assert fig.mean_error_pct == pytest.approx(7.0) and fig.max_abs_error_pct == pytest.approx(7.0)
    assert fig.spearman == pytest.approx(1.0) and fig.kendall == pytest.approx(1.0)


def test_mixed_errors_give_the_exact_shares_mape_and_rmspe() -> None:
    errors = [-12.0, -8.0, -4.0, 0.0, 3.0, 5.0, 6.0, 9.0, 10.0, 20.0]
    predicted = [m * (1 + e / 100) for m, e in zip(MEASURED, errors, strict=True)]
    fig = figures(predicted, MEASURED)
    assert fig.within_5 == pytest.approx(0.4)  # -4, 0, 3, 5 (5% exactly counts as within)
    assert fig.within_10 == pytest.approx(0.8)  # all but -12 and 20
    assert fig.mape == pytest.approx(np.mean(np.abs(errors)))
    assert fig.rmspe == pytest.approx(math.sqrt(np.mean(np.square(errors))))
    assert fig.mean_error_pct == pytest.approx(np.mean(errors))
    assert fig.max_abs_error_pct == pytest.approx(20.0)
    assert fig.spearman == pytest.approx(stats.spearmanr(predicted, MEASURED).statistic)
    assert fig.kendall == pytest.approx(stats.kendalltau(predicted, MEASURED).statistic)


def test_reversed_ranking_and_undefined_correlations() -> None:
    fig = figures(list(reversed(MEASURED)), MEASURED)
    assert fig.spearman == pytest.approx(-1.0) and fig.kendall == pytest.approx(-1.0)
    flat = figures([100.0] * 4, [90.0, 95.0, 100.0, 105.0])  # a constant prediction has no ranking
    assert flat.spearman is None and flat.kendall is None
    two = figures([1.0, 2.0], [1.0, 2.0])
    assert two.spearman is None and two.within_5 == 1.0
    with pytest.raises(ValueError, match="measured"):
        figures([1.0], [0.0])
    with pytest.raises(ValueError, match="equally long"):
        figures([1.0, 2.0], [1.0])


def test_error_and_overhead_prediction() -> None:
    assert error_pct(107.0, 100.0) == pytest.approx(7.0)
    assert error_pct(93.0, 100.0) == pytest.approx(-7.0)
    assert overhead_prediction(1000.0, 26, 4.0) == pytest.approx(1000.0 - 25 * 4.0)
    with pytest.raises(ValueError):
        NetworkRow("x", -1.0, 10.0, 3)


@pytest.mark.parametrize(
    ("kind", "slope", "intercept"),
    [("linear", 1.08, 350.0), ("scale", 1.09, 0.0), ("offset", 1.0, 420.0)],
)
def test_a_calibration_recovers_a_known_relation_exactly(kind: str, slope: float, intercept: float) -> None:
    raw = [900.0, 1400.0, 1800.0, 2600.0, 3100.0, 4000.0]
    measured = [slope * r + intercept for r in raw]
    cal = fit_calibration(_rows(measured, raw), kind)
    assert cal.slope == pytest.approx(slope) and cal.intercept_us == pytest.approx(intercept, abs=1e-6)
    assert cal.predict(2000.0) == pytest.approx(slope * 2000.0 + intercept)
    assert cal.fitted_on == tuple(f"net{i}" for i in range(len(raw)))


def test_the_calibration_record_is_what_the_searcher_reads() -> None:
    from searcher.lut import calibrated_latency

    space = fbnet_space(32)
    arch = ",".join(["k3_e1"] * len(space.layers))
    table = LatencyTable(space=space, entries={e.key: {"median": 10.0} for e in space.entries_of(arch)})
    cal = Calibration("linear", 1.1, 50.0, ("a", "b"), fit_seed=3)
    table.provenance["calibration"] = json.loads(json.dumps(cal.to_dict()))
    raw = table.network_latency(arch)
    assert calibrated_latency(table, space, arch) == pytest.approx(1.1 * raw + 50.0)
    assert Calibration.from_dict(table.provenance["calibration"]) == cal


def test_split_is_seeded_disjoint_and_covers_everything() -> None:
    fit, held = split_indices(31, seed=5)
    assert set(fit).isdisjoint(held) and set(fit) | set(held) == set(range(31))
    assert len(fit) == 15 and len(held) == 16
    assert split_indices(31, seed=5) == (fit, held)
    assert split_indices(31, seed=6) != (fit, held)
    assert split_indices(2, seed=0)[0] and split_indices(2, seed=0)[1]
    with pytest.raises(ValueError):
        split_indices(1, seed=0)


def test_every_calibrated_prediction_is_out_of_fold() -> None:
    raw = np.random.default_rng(0).uniform(1000, 5000, size=20)
    measured = 1.08 * raw + 400
    rows = _rows(list(measured), list(raw))
    report = accuracy_report(rows, overhead_us=3.0, kind="linear", split_seed=11)
    assert report.chosen == "linear" and report.calibration is not None and report.selection is not None
    folds = report.selection["folds"]
    assert len(set(folds)) == 10 and report.calibrated is not None and report.calibrated.n == 20
    for i, row in enumerate(rows):  # row i's prediction is the one of a fit on the other folds only
        others = [r for j, r in enumerate(rows) if folds[j] != folds[i]]
        cal = fit_calibration(others, "linear", shrink=report.selection["shrink"])
        assert report.calibrated_us(i) == pytest.approx(cal.predict(row.raw_us))
    # Make one network 20% slower: every other network's prediction moves, its own does not (it never saw itself).
    slower = list(measured)
    slower[3] *= 1.2
    again = accuracy_report(_rows(slower, list(raw)), overhead_us=3.0, kind="linear", split_seed=11)
    assert again.chosen == "linear" and again.calibrated_us(3) == pytest.approx(report.calibrated_us(3))
    assert again.calibrated_us(3) != pytest.approx(slower[3], rel=0.05)
    doc = json.loads(json.dumps(report.to_dict()))
    assert {r["role"] for r in doc["rows"]} == {"out_of_fold"} and doc["chosen"] == "linear"
    assert doc["choice"]["margin_mape"] > 5 and "linear" in doc["choice"]["reason"]


def test_a_report_that_overlaps_or_leaks_cannot_be_built() -> None:
    rows = tuple(_rows(MEASURED[:4], MEASURED[:4]))
    fig = figures([r.raw_us for r in rows], [r.measured_us for r in rows])
    held_fig = figures([1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="both fitted on and held out"):
        AccuracyReport(rows=rows, raw=fig, fit_indices=(0, 1), held_out_indices=(1, 2))
    leaked = Calibration("scale", 1.0, 0.0, ("net0", "net2"))
    with pytest.raises(ValueError, match="held-out network"):
        AccuracyReport(rows=rows, raw=fig, calibration=leaked, calibrated=held_fig, fit_indices=(0, 1),
                       held_out_indices=(2, 3))  # fmt: skip
    honest = Calibration("scale", 1.0, 0.0, ("net0", "net1"))
    with pytest.raises(ValueError, match="exactly the held-out"):
        AccuracyReport(rows=rows, raw=fig, calibration=honest, calibrated=fig, fit_indices=(0, 1),
                       held_out_indices=(2, 3))  # fmt: skip


def test_report_on_a_known_gap_calibration_beats_raw_and_duplicates_count_once() -> None:
    raw = [float(x) for x in np.linspace(1000, 6000, 24)]
    measured = [r * 1.085 + 300 for r in raw]  # the LUT under-predicts by a scale and a constant
    rows = _rows(measured, raw)
    rows.append(rows[0])  # the same network twice: counted once, so it cannot sit on both sides
    report = accuracy_report(rows, overhead_us=5.0, kind="linear", split_seed=0)
    assert len(report.rows) == 24
    assert report.raw.mean_error_pct < -8 and report.raw.within_5 == 0.0
    assert report.calibrated is not None and report.calibrated.within_5 == 1.0 and report.calibrated.mape < 0.5
    assert report.overhead is not None and report.overhead.mean_error_pct < report.raw.mean_error_pct
    none = accuracy_report(rows[:1], overhead_us=None, kind="linear")  # one network: nothing to cross-validate
    assert none.chosen == "none" and none.calibration is None and none.overhead is None
    assert none.calibrated == none.raw and "too few" in none.selection["reason"]
    plain = accuracy_report(rows, kind=None)
    assert plain.calibration is None and plain.held_out_indices == ()


def test_plot_writes_a_png(tmp_path) -> None:
    raw = [float(x) for x in np.linspace(1000, 6000, 12)]
    report = accuracy_report(_rows([r * 1.08 for r in raw], raw), overhead_us=4.0, split_seed=1)
    out = plot_report(report, tmp_path / "sub" / "acc.png", title="test")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
