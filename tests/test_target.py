"""The target projection (searcher.target): the likeliest architecture predicted within a window of the target."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from searcher.target import project_to_target, raw_for_target


def _brute(log_probs, lat, fixed, target, predict, window):
    """Every architecture of a small space, the best one by the projection's rule."""
    best = None
    for picks in itertools.product(*(range(k) for k in lat.shape[1:] * lat.shape[0])):
        raw = fixed + sum(lat[i, k] for i, k in enumerate(picks))
        dist = abs(predict(raw) / target - 1.0)
        lp = sum(log_probs[i, k] for i, k in enumerate(picks))
        key = (dist <= window, -dist if dist > window else 0.0, lp)
        if best is None or key > best[0]:
            best = (key, list(picks), raw)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_projection_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layers, k = 5, 3
    lat = rng.uniform(100.0, 1000.0, size=(layers, k))
    logits = rng.normal(size=(layers, k))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    mask = np.ones_like(lat, dtype=bool)
    predict = lambda raw: 1.2 * raw + 50.0  # noqa: E731
    lo, hi = lat.min(axis=1).sum() + 30.0, lat.max(axis=1).sum() + 30.0
    target = predict(lo + rng.uniform(0.2, 0.8) * (hi - lo))
    window = 0.03
    picks = project_to_target(log_probs, lat, mask, 30.0, target, predict, window=window, bins=1 << 16)
    raw = 30.0 + sum(lat[i, c] for i, c in enumerate(picks))
    (inside, _, best_lp), brute_picks, _ = _brute(log_probs, lat, 30.0, target, predict, window)
    assert inside, "the constructed target is reachable within the window"
    assert abs(predict(raw) / target - 1.0) <= window + 1e-3
    lp = sum(log_probs[i, c] for i, c in enumerate(picks))
    assert lp == pytest.approx(best_lp, abs=1e-9) or picks == brute_picks


def test_target_outside_the_space_gives_the_nearest_end() -> None:
    lat = np.array([[1.0, 5.0], [2.0, 7.0]])
    mask = np.ones_like(lat, dtype=bool)
    log_probs = np.log(np.array([[0.9, 0.1], [0.9, 0.1]]))
    assert project_to_target(log_probs, lat, mask, 0.0, 1000.0) == [1, 1]  # slowest
    assert project_to_target(log_probs, lat, mask, 0.0, 0.5) == [0, 0]  # fastest


def test_padding_is_never_chosen() -> None:
    lat = np.array([[1.0, 0.0], [2.0, 3.0]])
    mask = np.array([[True, False], [True, True]])
    log_probs = np.log(np.array([[0.01, 0.99], [0.5, 0.5]]))
    assert project_to_target(log_probs, lat, mask, 0.0, 4.0)[0] == 0


def test_raw_for_target_inverts_the_calibration() -> None:
    assert raw_for_target(1300.0, lambda r: 1.3 * r) == pytest.approx(1000.0, rel=1e-9)
    assert raw_for_target(500.0, lambda r: r - 100.0) == pytest.approx(600.0, rel=1e-9)
    with pytest.raises(ValueError):
        project_to_target(np.zeros((1, 1)), np.ones((1, 1)), np.ones((1, 1), bool), 0.0, math.nan)
