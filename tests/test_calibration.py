"""Calibration chosen by cross-validation, intervals and the verdict, on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from searchspace.accuracy import NetworkRow, accuracy_report, figures, fit_calibration
from searchspace.calibration import choose_calibration
from searchspace.intervals import figure_intervals, networks_needed, share_lower_bound, verdict


def _rows(measured: np.ndarray, raw: np.ndarray) -> list[NetworkRow]:
    return [NetworkRow(f"net{i}", float(m), float(r), 26) for i, (m, r) in enumerate(zip(measured, raw, strict=True))]


def _narrow_noisy(n: int, seed: int) -> list[NetworkRow]:
    """Networks whose raw sums span 3% and whose measured latencies are the raw sum with ±3% noise, no bias."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(10_000, 10_300, size=n)
    return _rows(raw * (1 + rng.uniform(-0.03, 0.03, size=n)), raw)


@pytest.mark.parametrize("seed", range(6))
def test_a_free_linear_fit_overfits_few_narrow_networks_and_is_not_chosen(seed: int) -> None:
    rows = _narrow_noisy(8, seed)
    raw_fig = figures([r.raw_us for r in rows], [r.measured_us for r in rows])
    # the trap: a free two-parameter fit on half the networks, judged on the other half, is far worse than raw
    free = fit_calibration(rows[:4], "linear")
    held = rows[4:]
    free_fig = figures([free.predict(r.raw_us) for r in held], [r.measured_us for r in held])
    held_raw = figures([r.raw_us for r in held], [r.measured_us for r in held])
    if seed == 0:
        assert free_fig.mape > held_raw.mape  # (it is so for this draw; the choice below must hold for all)
    report = accuracy_report(rows, overhead_us=None, split_seed=seed)
    assert report.chosen in ("none", "scale"), report.selection["reason"]
    assert "linear" not in report.selection["tried"]  # 3% range: no slope and intercept to identify
    assert report.calibrated is not None and report.calibrated.mape <= raw_fig.mape + 1e-9
    assert report.calibrated.within_10 >= raw_fig.within_10 and report.calibrated.within_5 >= raw_fig.within_5
    # every calibrated prediction is out of fold: it is the chosen model fitted on the other folds
    folds = report.selection["folds"]
    for i, row in enumerate(rows):
        if report.chosen == "none":
            assert report.calibrated_us(i) == row.raw_us
        else:
            others = [r for j, r in enumerate(rows) if folds[j] != folds[i]]
            cal = fit_calibration(others, report.chosen, shrink=report.selection["shrink"])
            assert report.calibrated_us(i) == pytest.approx(cal.predict(row.raw_us))


def test_the_served_calibration_is_never_worse_than_the_raw_sum_out_of_fold() -> None:
    calibrated = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(5, 40))
        raw = rng.uniform(2_000, 2_000 * rng.uniform(1.05, 4.0), size=n)
        measured = raw * rng.uniform(0.9, 1.15) * (1 + rng.normal(0, rng.uniform(0.005, 0.08), size=n))
        overhead = float(rng.uniform(0, 20))
        sel = choose_calibration(_rows(measured, raw), overhead_us=overhead, seed=seed)
        chosen, base = sel.scores[sel.chosen], sel.scores["none"]
        assert chosen["mape"] <= base["mape"] and chosen["within_10"] >= base["within_10"]
        assert sel.chosen == "none" or sel.margin_mape > 0
        # what a report shows (quickstart's table: shares, bias to 0.1 points, Spearman to 3 decimals)
        report = accuracy_report(_rows(measured, raw), overhead_us=overhead, split_seed=seed)
        cal, plain = report.calibrated, report.raw
        assert cal is not None
        assert cal.within_5 >= plain.within_5 and cal.within_10 >= plain.within_10 and cal.mape <= plain.mape
        assert round(abs(cal.mean_error_pct), 1) <= round(abs(plain.mean_error_pct), 1)
        assert plain.spearman is None or round(cal.spearman, 3) >= round(plain.spearman, 3)
        calibrated += report.chosen != "none"
    assert calibrated >= 10  # the guarantee is not met by never calibrating


def test_a_real_gap_over_a_wide_range_is_calibrated_and_named() -> None:
    rng = np.random.default_rng(3)
    raw = rng.uniform(2_000, 12_000, size=40)
    measured = (0.9 * raw + 800) * (1 + rng.normal(0, 0.01, size=40))
    report = accuracy_report(_rows(measured, raw), split_seed=3)
    assert report.chosen in ("linear", "offset", "scale") and report.calibration is not None
    assert report.calibrated.mape < report.raw.mape - 2 and report.selection["margin_mape"] > 2
    assert report.nested is not None and report.nested.mape < report.raw.mape
    same = accuracy_report(_rows(measured, raw), split_seed=3)
    assert same.selection == report.selection  # seeded: the same choice and folds


def test_clopper_pearson_lower_bound_on_known_cases() -> None:
    assert share_lower_bound(50, 50) == pytest.approx(0.05 ** (1 / 50), abs=1e-9)  # ≈ 94.2%
    assert share_lower_bound(50, 50) == pytest.approx(0.9418, abs=1e-4)
    assert share_lower_bound(25, 25) == pytest.approx(0.05 ** (1 / 25), abs=1e-9)  # ≈ 88.7%
    assert share_lower_bound(0, 10) == 0.0
    assert share_lower_bound(9, 10) == pytest.approx(0.6058, abs=1e-3)
    assert networks_needed(0.90) == 29 and share_lower_bound(29, 29) >= 0.90 > share_lower_bound(28, 28)
    with pytest.raises(ValueError):
        share_lower_bound(3, 2)


def test_bootstrap_intervals_are_seeded_and_contain_the_value() -> None:
    rng = np.random.default_rng(0)
    measured = rng.uniform(1_000, 5_000, size=30)
    predicted = measured * (1 + rng.normal(0, 0.04, size=30))
    a = figure_intervals(predicted, measured, seed=7)
    assert a == figure_intervals(predicted, measured, seed=7)
    assert a["mape"]["low"] < a["mape"]["value"] < a["mape"]["high"]
    assert a["spearman"]["low"] <= a["spearman"]["value"] <= a["spearman"]["high"] <= 1.0
    assert a["within_10"]["lower95"] <= a["within_10"]["share"]
    flat = figure_intervals([1.0, 1.0], [1.0, 1.0])  # too few for a bootstrap: no interval, no warning
    assert flat["mape"]["low"] is None and flat["spearman"]["value"] is None


def _summary(n: int, within: int, **extra) -> dict:
    measured = np.linspace(1_000, 2_000, n)
    err = np.where(np.arange(n) < within, 0.02, 0.2)
    rows = _rows(measured, measured * (1 + err))
    return {**accuracy_report(rows, kind=None).summary(), **extra}


def test_verdict_levels_and_reasons_in_words() -> None:
    assert verdict(None)["level"] == "not validated"
    assert verdict(_summary(3, 3))["level"] == "not validated"
    ten = verdict(_summary(10, 10))
    assert ten["level"] == "rough" and "10 networks" in ten["reasons"][0] and "74%" in ten["reasons"][0]
    fifty = verdict(_summary(50, 50))
    assert fifty["level"] == "trusted" and "94%" in fifty["reasons"][0]
    drift = verdict(_summary(50, 50), {"passes": 300, "passes_redone": 124, "sentinel_max_abs_drift": 1.47})
    assert drift["level"] == "rough" and any("124 of 424 passes redone" in r and "147%" in r for r in drift["reasons"])
    quick = verdict(_summary(50, 50, quick=True))
    assert quick["level"] == "rough" and any("quick" in r for r in quick["reasons"])
    assert fifty["served"] == "raw"


def _medians(space) -> dict[str, float]:
    """A made-up LUT: each entry's latency grows with its kernel, expansion and size (skip: nearly free)."""
    out = {}
    for e in space.distinct_entries():
        k, x = e.kernel, e.expansion
        out[e.key] = 5.0 if e.op == "skip" else 10.0 + k * x * e.cout * e.h / 50.0
    return out


def test_stratified_draw_spans_the_lut_sum_range_reproducibly() -> None:
    from searchspace import load_space
    from searchspace.validation import lut_sum_range, stratified_archs, validation_archs

    space = load_space("fbnet", resolution=32)
    medians = _medians(space)
    lo, hi = lut_sum_range(space, medians)

    def total(arch: str) -> float:
        return sum(medians[e.key] for e in space.entries_of(arch))

    archs = stratified_archs(space, medians, 20, seed=4, strata=5, named=["fbnet-a"])
    assert archs == stratified_archs(space, medians, 20, seed=4, strata=5, named=["fbnet-a"])
    assert archs != stratified_archs(space, medians, 20, seed=5, strata=5, named=["fbnet-a"])
    assert len(archs) == 21 == len(set(archs)) and archs[0] == space.decode("fbnet-a").encode()
    sums = sorted(total(a) for a in archs[1:])
    assert sums[0] - lo < 0.05 * (hi - lo) and hi - sums[-1] < 0.05 * (hi - lo)  # near the space's extremes
    per_stratum = np.histogram(sums, bins=5, range=(lo, hi))[0]
    assert per_stratum.min() >= 2, per_stratum
    uniform = [total(a) for a in validation_archs(space, 20, seed=4)]
    assert max(uniform) - min(uniform) < 0.5 * (sums[-1] - sums[0])  # what uniform draws miss


def test_a_report_of_one_network_is_json_without_infinities() -> None:
    import json

    report = accuracy_report([NetworkRow("a", 1000.0, 900.0, 26)], overhead_us=1.0)
    text = json.dumps(report.to_dict(), allow_nan=False)  # what PostgreSQL's json type accepts
    assert report.chosen == "none" and "Infinity" not in text
