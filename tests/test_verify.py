"""``hwlut verify``: a 32x32 search's chosen network measured for real on onnxruntime, beside the LUT's sentinel."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hwlut.cli import app
from profiler.export import network_target
from profiler.verify import lut_sentinel, pick_architecture, sentinel_drift
from searchspace import LatencyTable, fbnet_space

LOOSE = ["--precision", "0.05", "--time-cap", "0.3", "--slice", "0.01", "--warmup-time", "0.02", "--warmup-runs", "2"]


def test_sentinel_drift_and_the_luts_sentinel_reference() -> None:
    space = fbnet_space(32)
    table = LatencyTable(space=space)
    entry, ref = lut_sentinel(table)
    assert ref is None and entry.key  # no record: the space's default sentinel, no reference
    table.provenance["sentinel"] = {"key": entry.key, "batches": [{"reference_us": r} for r in (100.0, 120.0, 110.0)]}
    assert lut_sentinel(table) == (entry, 110.0)
    assert sentinel_drift(121.0, 110.0) == pytest.approx(0.1) and sentinel_drift(None, 110.0) is None
    with pytest.raises(ValueError, match="sample:N"):
        pick_architecture({"argmax": {"arch": "x"}}, "best")


@pytest.mark.slow
def test_verify_measures_a_32x32_searchs_choice_for_real(tmp_path: Path) -> None:
    from searcher import SearchConfig, Searcher, load_lut_file, proxy_task, synthetic_table

    space = fbnet_space(32)
    synthetic_table(space, device="box").save(tmp_path / "lut.json")
    table, source = load_lut_file(tmp_path / "lut.json")
    target_ms = table.network_latency(",".join(["k3_e1"] * len(space.layers))) / 1000.0
    config = SearchConfig(
        epochs=1, warmup_epochs=0, batch_size=8, max_steps=1, width_mult=0.125, samples=1, seed=0,
        device_type="cpu", target_ms=target_ms, beta=2.0,
    )  # fmt: skip
    result = Searcher(table, source, proxy_task("digits", resolution=32, samples=32), config).run(tmp_path / "run")
    chosen = result["target"]["arch"]  # a target-latency search: its target architecture is verified
    assert abs(result["target"]["predicted_error_pct"]) <= 1.0  # the target is a network of the space
    path = tmp_path / "run" / "search_result.json"

    args = ["verify", "--result", str(path), "--lut", str(tmp_path / "lut.json"), "--json", "--calm-wait", "1", *LOOSE]
    run = CliRunner().invoke(app, args)
    assert run.exit_code in (0, 3), run.output
    out = json.loads(run.stdout)
    m = out["measurement"]
    assert out["arch"] == chosen and m["artifact"] == network_target(space, chosen).label
    assert m["runtime"]["runtime"] == "ort" and m["stats"]["count"] >= 2 and out["measured_us"] > 0
    assert out["predicted_us"] == pytest.approx(table.network_latency(chosen))
    assert out["error_pct"] == pytest.approx(100 * (out["predicted_us"] / out["measured_us"] - 1))
    assert out["sentinel"]["key"] == lut_sentinel(table)[0].key and out["sentinel"]["now_us"] > 0
    assert out["target_us"] == pytest.approx(target_ms * 1000.0)
    assert out["calm"]["rounds"] >= 1 and out["calm"]["threshold"] == 0.05  # the gate ran (bounded by 1 s)
    assert out["target_kept"] == (abs(out["target_error_pct"]) <= 5.0)
    assert run.exit_code == (0 if out["target_kept"] else 3)

    result["lut"]["space_hash"] = "0" * 40  # a result searched on another space
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(result))
    refused = CliRunner().invoke(app, ["verify", "--result", str(bad), "--lut", str(tmp_path / "lut.json")])
    assert refused.exit_code == 2 and "space hash" in refused.output


class _Scripted:
    """A sentinel whose timed runs return the scripted latencies in turn."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.i = values, 0

    def timed_run(self, clock) -> float:
        self.i += 1
        return self.values[(self.i - 1) % len(self.values)]


def test_the_calm_gate_waits_for_a_steady_sentinel_and_is_bounded() -> None:
    from profiler.calm import wait_until_calm

    ticks = iter(range(10_000))
    steady = wait_until_calm(_Scripted([100.0]), max_wait_s=50, now=lambda: float(next(ticks)))
    assert steady.calm and steady.rounds == 5 and steady.spread == 0.0
    # a sentinel whose rounds swing 100 -> 150 µs (one round of 5 runs each): never calm, stops at the bound
    noisy = wait_until_calm(_Scripted([100.0] * 5 + [150.0] * 5), max_wait_s=20, now=lambda: float(next(ticks)))
    assert not noisy.calm and noisy.spread > 0.05 and noisy.waited_s >= 20 and 10 <= noisy.rounds <= 21


@pytest.mark.slow
def test_networks_measured_apart_from_the_build_for_real(tmp_path: Path) -> None:
    """Quickstart's last step: FBNet-A (32x32) timed after the build beside the LUT's sentinel, kept in the file."""
    from rich.console import Console

    from hwlut.cli.quickstart import _measure_apart
    from hwlut.cli.quickstart_view import Run, apart_summary
    from profiler.export import ArtifactCache
    from searcher import synthetic_table

    space = fbnet_space(32)
    table = synthetic_table(space, device="box")
    sentinel, _ = lut_sentinel(table)
    table.provenance["sentinel"] = {"key": sentinel.key, "batches": [{"reference_us": 50.0}]}
    table.provenance["calibration"] = {"kind": "scale", "slope": 1.25, "intercept_us": 0.0}
    path = tmp_path / "lut.json"
    table.save(path)
    run = Run("ort", "onnxruntime", 1, lut=table, path=path)
    protocol = {"target_rel_ci": 0.05, "time_cap_s": 0.3, "slice_s": 0.01, "warmup_s": 0.02, "min_passes": 2}
    archs = {"fbnet-a": space.decode("fbnet-a").encode()}
    _measure_apart(Console(file=io.StringIO()), [run], archs, protocol, ArtifactCache(tmp_path / "art"))

    kept = json.loads(path.read_text())["provenance"]["accuracy_apart"]
    assert kept == json.loads(json.dumps(run.apart))  # the file keeps what was printed
    (row,) = kept["networks"]
    drift = kept["sentinel"]["drift"]
    assert row["name"] == "fbnet-a" and row["measured_us"] > 0 and kept["sentinel"]["key"] == sentinel.key
    assert drift == pytest.approx(kept["sentinel"]["now_us"] / 50.0 - 1.0)
    raw = table.network_latency(row["arch"])
    assert row["raw_error_pct"] == pytest.approx(100 * (raw / row["measured_us"] - 1))
    assert row["calibrated_error_pct"] == pytest.approx(100 * (1.25 * raw / row["measured_us"] - 1))
    adjusted = row["measured_us"] / (1 + drift)
    assert row["drift_adjusted_calibrated_error_pct"] == pytest.approx(100 * (1.25 * raw / adjusted - 1))
    out = Console(file=io.StringIO(), width=200)
    apart_summary(out, [run])
    text = out.file.getvalue()
    assert "Measured apart from the build" in text and "fbnet-a" in text and f"{row['raw_error_pct']:+.1f}%" in text
