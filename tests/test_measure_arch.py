"""``hwlut measure-arch`` and :mod:`profiler.network`: whole networks timed end to end, against LUT sums."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
from fakes import FAST_CFG as CFG
from fakes import QUICK_CFG
from fakes import FakeCache as _Cache
from fakes import FixedRuntime as _Runtime
from fakes import ticks as _ticks
from typer.testing import CliRunner

from hwlut.cli import app
from profiler.export import network_target
from profiler.local import profile_space
from profiler.network import LutSpaceMismatch, measure_network, measure_networks
from profiler.runtimes import make_runtime
from searchspace import LatencyTable, MissingEntries, SpaceSpec, load_space

FAST_ARGS = ["--precision", "0.02", "--time-cap", "0.4", "--slice", "0.01", "--warmup-time", "0.05"]
OVERHEAD_US = 4.0


def _arch(space: SpaceSpec, seed: int = 0) -> str:
    return space.sample(random.Random(seed)).encode()


def _handmade_lut(space: SpaceSpec, arch: str, runtime: str, drop: int = 0) -> LatencyTable:
    """A LUT holding the network's entries (10 µs, 11 µs, ...) but the last ``drop`` of them."""
    keys = list(dict.fromkeys(e.key for e in space.entries_of(arch)))
    kept = keys[: len(keys) - drop]
    return LatencyTable(
        space=space,
        entries={k: {"median": 10.0 + i} for i, k in enumerate(kept)},
        overhead_us=OVERHEAD_US,
        provenance={"runtime": {"runtime": runtime, "threads": 1}},
    )


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["measure-arch", *args])


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["ort", "tflite"])
def test_measure_arch_json_real_runtime_with_a_lut(runtime: str, tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    arch = _arch(space)
    table = _handmade_lut(space, arch, runtime)
    lut = tmp_path / "lut.json"
    table.save(lut)
    result = _invoke(arch, "--runtime", runtime, "-r", "32", "--lut", str(lut), "--json", *FAST_ARGS)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    measured, predicted = doc["measured_us"], doc["predicted_us"]
    assert measured > 0 and measured == doc["stats"]["median"]
    assert doc["stats"]["min"] <= measured <= doc["stats"]["max"]
    assert doc["stats"]["stop_reason"] in ("ci", "time_cap") and doc["stats"]["count"] >= 3 * 3
    n = len(space.entries_of(arch))
    assert predicted == pytest.approx(sum(table.entries[e.key]["median"] for e in space.entries_of(arch)))
    assert doc["error_pct"] == pytest.approx(100 * (predicted / measured - 1))
    assert doc["entries"] == n and doc["overhead_us"] == OVERHEAD_US
    assert doc["predicted_corrected_us"] == pytest.approx(predicted - (n - 1) * OVERHEAD_US)
    assert doc["error_corrected_pct"] == pytest.approx(100 * (doc["predicted_corrected_us"] / measured - 1))
    assert doc["runtime"]["runtime"] == runtime and doc["runtime"]["threads"] == 1
    assert doc["arch"] == arch and doc["resolution"] == 32 and doc["lut"] == str(lut)
    assert doc["sentinel"]["passes"] >= 3 and "max_abs_drift" in doc["sentinel"]
    assert 0 < doc["inference_s"] <= doc["wall_s"]

    assert doc["drift"] is None  # the LUT recorded no sentinel reference
    # A LUT that recorded its sentinel's reference: the sentinel is timed beside the network, drift compared.
    from profiler.local import default_sentinel

    table.provenance["sentinel"] = {"key": default_sentinel(space).key, "batches": [{"reference_us": 50.0}]}
    table.save(lut)
    text = _invoke(arch, "--runtime", runtime, "--lut", str(lut), *FAST_ARGS)  # the LUT's space: 32
    assert text.exit_code == 0, text.output
    assert "measured" in text.stdout and "LUT sum" in text.stdout and "error" in text.stdout
    assert f"{predicted / 1000:.3f} ms" in text.stdout
    assert "at the LUT's build 50.0 µs" in text.stdout and "drift-adjusted measured" in text.stdout


@pytest.mark.slow
def test_measure_arch_without_a_lut_and_a_real_lut_predicts_the_right_magnitude(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    arch = ",".join(["k3_e1"] * len(space.layers))
    bare = _invoke(arch, "--runtime", "ort", "-r", "32", "--json", *FAST_ARGS)
    assert bare.exit_code == 0, bare.output
    doc = json.loads(bare.stdout)
    assert doc["measured_us"] > 0 and doc["predicted_us"] is None and doc["error_pct"] is None

    lut = tmp_path / "real.json"
    cfg = dataclasses.replace(QUICK_CFG, time_cap_s=0.3)
    profile_space(space, make_runtime("ort", threads=1), lut, cfg, entries=space.entries_of(arch))
    result = _invoke(arch, "--runtime", "ort", "--lut", str(lut), "--json", *FAST_ARGS)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # µs against µs (a unit slip would be 1000x off). The bound is wide on purpose: on a shared machine a
    # change of load between the LUT build and the network's measurement alone moves the ratio by 2-3x.
    assert 0.1 < doc["predicted_us"] / doc["measured_us"] < 10.0
    assert doc["overhead_us"] == LatencyTable.load(lut).overhead_us


def test_a_lut_missing_entries_is_a_clear_error_listing_them(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    arch = _arch(space, seed=1)
    table = _handmade_lut(space, arch, "ort", drop=2)
    lut = tmp_path / "gappy.json"
    table.save(lut)
    lacking = table.missing(space.entries_of(arch))
    assert len(set(lacking)) == 2
    result = _invoke(arch, "--runtime", "ort", "--lut", str(lut), "--json")
    assert result.exit_code == 2
    assert result.stdout == ""  # nothing measured, no JSON
    assert "lacks 2 entries of this network" in result.stderr
    for key in lacking:
        assert key in result.stderr


def test_a_lut_of_another_space_or_a_bad_arch_is_refused(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    arch = _arch(space)
    lut = tmp_path / "lut32.json"
    _handmade_lut(space, arch, "ort").save(lut)
    other = _invoke(arch, "--runtime", "ort", "--lut", str(lut), "-r", "224")
    assert other.exit_code == 2 and "fbnet-32" in other.stderr
    named = _invoke(arch, "--runtime", "ort", "--lut", str(lut), "--space", "fbnet", "-r", "224")
    assert named.exit_code == 2 and "fbnet-32" in named.stderr and "fbnet-224" in named.stderr
    bad = _invoke("k3_e1,k3_e1", "--runtime", "ort", "-r", "32")
    assert bad.exit_code == 2 and "expected 22 ops" in bad.output
    rt = _invoke(arch, "--runtime", "adb", "-r", "32")
    assert rt.exit_code == 2 and "known: ort, tflite" in rt.output


# -- the library, against a scripted runtime (no export, no clock) ----------------------------


def test_measure_network_exports_the_whole_network_and_prices_it() -> None:
    space = load_space("fbnet", resolution=32)
    arch = _arch(space)
    cache = _Cache()
    table = _handmade_lut(space, arch, "fake")
    label = network_target(space, arch).label
    result = measure_network(
        space, arch, _Runtime(latencies={label: 800.0}), CFG, cache=cache, lut=table, clock=_ticks()
    )
    assert cache.asked == [(label, "onnx", (1, 3, 32, 32))]  # one artifact: the whole network
    assert result.measured_us == 800.0 and result.stats["stop_reason"] == "ci" and result.stats["passes"] == 3
    predicted = table.network_latency(arch)
    assert result.predicted_us == pytest.approx(predicted)
    assert result.error_pct == pytest.approx(100 * (predicted / 800.0 - 1))
    assert result.predicted_corrected_us == pytest.approx(predicted - (result.entries - 1) * OVERHEAD_US)
    doc = result.to_dict()
    assert {"measured_us", "predicted_us", "error_pct", "stats"} <= set(doc) and doc["sentinel"]["key"] == "self"


def test_measure_networks_interleaves_several_with_a_sentinel_entry() -> None:
    space = load_space("fbnet", resolution=32)
    a, b = _arch(space, 1), _arch(space, 2)
    cache = _Cache()
    la, lb = network_target(space, a).label, network_target(space, b).label
    rt = _Runtime(latencies={la: 700.0, lb: 900.0})
    sentinel = space.layers[5].entry("k3_e3")
    results = measure_networks(space, [a, b, a], rt, CFG, cache=cache, sentinel=sentinel, clock=_ticks())
    assert [r.measured_us for r in results] == [700.0, 900.0, 700.0]
    assert [x[0] for x in cache.asked] == [la, lb, sentinel.key]  # the repeated network is loaded once
    assert all(r.predicted_us is None and r.error_pct is None for r in results)
    assert results[0].sentinel["key"] == sentinel.key


def test_measure_network_checks_the_lut_before_exporting() -> None:
    space = load_space("fbnet", resolution=32)
    arch = _arch(space)
    cache = _Cache()
    with pytest.raises(MissingEntries) as info:
        measure_network(space, arch, _Runtime(), CFG, cache=cache, lut=_handmade_lut(space, arch, "fake", drop=3))
    assert len(info.value.keys) == 3
    other = load_space("fbnet", resolution=224)
    with pytest.raises(LutSpaceMismatch, match="fbnet-224"):
        measure_network(other, arch, _Runtime(), CFG, cache=cache, lut=_handmade_lut(space, arch, "fake"))
    assert cache.asked == []
