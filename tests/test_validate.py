"""Cold-cache measurement (:mod:`profiler.runtimes.coldcache`) and LUT validation (:mod:`profiler.validate`)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
from fakes import FAST_CFG as CFG
from fakes import QUICK_CFG
from fakes import FakeCache as _Cache
from fakes import FixedRuntime as _Runtime
from typer.testing import CliRunner

from hwlut.cli import app
from profiler.export import network_target
from profiler.local import LutMismatch, profile_space
from profiler.protocol import ProtocolConfig, measure_batch
from profiler.runtimes import Loaded, make_runtime
from profiler.runtimes.coldcache import (
    MAX_FLUSH_BYTES,
    CacheFlusher,
    ColdCacheLoaded,
    ColdCacheRuntime,
    default_flush_bytes,
    last_level_cache_bytes,
    with_cache_mode,
)
from profiler.validate import RuntimeMismatch, validate_lut, validation_archs, write_calibration
from searchspace import ArchitectureError, LatencyTable, MissingEntries, SpaceSpec, load_space

# -- cold caches against a scripted clock --------------------------------------------------------


class ScriptedClock:
    """A nanosecond clock that moves only when something runs; every read is logged."""

    def __init__(self, log: list) -> None:
        self.now = 0
        self.log = log

    def __call__(self) -> int:
        self.log.append(("clock", self.now))
        return self.now


class ScriptedModel(Loaded):
    """A model whose every run takes ``us`` on the scripted clock."""

    def __init__(self, clock: ScriptedClock, us: float) -> None:
        self.clock, self.us = clock, us

    def run_once(self) -> None:
        self.clock.log.append(("run", self.clock.now))
        self.clock.now += int(self.us * 1000)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x


class ScriptedFlusher:
    """Stands in for :class:`CacheFlusher`: a touch costs ``us`` on the scripted clock."""

    def __init__(self, clock: ScriptedClock, us: float = 5000.0) -> None:
        self.clock, self.us, self.touches = clock, us, 0

    def touch(self) -> None:
        self.clock.log.append(("touch", self.clock.now))
        self.clock.now += int(self.us * 1000)
        self.touches += 1


def test_the_flush_happens_before_the_timed_region_and_is_not_counted() -> None:
    log: list = []
    clock = ScriptedClock(log)
    flusher = ScriptedFlusher(clock, us=5000.0)
    model = ColdCacheLoaded(ScriptedModel(clock, 120.0), flusher)
    assert model.timed_run(clock) == pytest.approx(120.0)  # not 5120
    assert [kind for kind, _ in log] == ["touch", "clock", "run", "clock"]
    model.run_once()  # an untimed run does not flush
    assert flusher.touches == 1


def test_every_timed_run_of_the_protocol_flushes_and_samples_stay_exact() -> None:
    log: list = []
    clock = ScriptedClock(log)
    flusher = ScriptedFlusher(clock, us=7000.0)
    cfg = ProtocolConfig(
        warmup_runs=2,
        warmup_s=0.0,
        entry_warmup_s=0.0,
        slice_s=0.0,
        sentinel_slice_s=0.0,
        time_cap_s=10.0,
        min_passes=3,
        min_runs_per_pass=3,
    )
    items = [("a", ColdCacheLoaded(ScriptedModel(clock, 100.0), flusher))]
    sentinel = ColdCacheLoaded(ScriptedModel(clock, 50.0), flusher)
    result = measure_batch(items, sentinel, cfg, clock=clock)
    entry = result.entries["a"]
    assert entry.stop_reason == "ci" and set(entry.samples) == {100.0}
    runs = sum(1 for kind, _ in log if kind == "run")
    assert flusher.touches == runs  # every invocation (warm-up, sentinel, timed) was preceded by a flush
    for i, (kind, _) in enumerate(log):
        if kind == "run":
            assert log[i - 1][0] == "clock" and log[i - 2][0] == "touch"  # touch, t0, run


def test_the_real_flusher_reads_every_cache_line() -> None:
    flusher = CacheFlusher(1 << 20)
    flusher.touch()
    flusher.touch()
    assert flusher.touches == 2 and flusher.sink == (1 << 20) // 64  # one 1 per 64-byte line, all summed
    with pytest.raises(ValueError):
        CacheFlusher(100)


def test_last_level_cache_from_sysfs_and_the_default_flush(tmp_path: Path) -> None:
    for i, (level, kind, size) in enumerate(
        [(1, "Data", "48K"), (1, "Instruction", "64K"), (2, "Unified", "2048K"), (3, "Unified", "32768K")]
    ):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert last_level_cache_bytes(tmp_path) == 32 << 20
    assert default_flush_bytes(32 << 20) == 48 << 20
    assert default_flush_bytes(480 << 20) == MAX_FLUSH_BYTES  # a VM reporting its host's L3
    detected = last_level_cache_bytes()
    assert detected is None or detected >= 1 << 16


def test_cache_mode_is_recorded_and_warm_and_cold_never_share_a_lut(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    entries = [space.fixed_entries()["fc"], space.layers[-1].entry("k3_e1")]
    cold = ColdCacheRuntime(_Runtime(), flush_bytes=1 << 16, llc_bytes=1 << 15)
    assert cold.name == "fake" and cold.format == "onnx"
    out = tmp_path / "cold.json"
    table = profile_space(space, cold, out, CFG, entries=entries, cache=_Cache())
    assert set(table.entries) == {e.key for e in entries}
    assert table.provenance["cache_mode"] == "cold"
    rt = table.provenance["runtime"]
    assert rt["cache_mode"] == "cold" and rt["cache_flush_bytes"] == 1 << 16 and rt["last_level_cache_bytes"] == 1 << 15
    assert cold.flusher.touches > 0
    with pytest.raises(LutMismatch, match="runtime"):
        profile_space(space, _Runtime(), out, CFG, entries=entries, cache=_Cache())
    warm = profile_space(space, with_cache_mode(_Runtime(), "warm"), tmp_path / "warm.json", CFG, entries=entries,
                         cache=_Cache())  # fmt: skip
    assert warm.provenance["cache_mode"] == "warm" and "cache_mode" not in warm.provenance["runtime"]


def test_make_runtime_selects_the_cache_mode() -> None:
    cold = make_runtime("ort", threads=1, cache_mode="cold", cache_flush_bytes=1 << 20)
    settings = cold.settings()
    assert (
        settings["runtime"] == "ort" and settings["cache_mode"] == "cold" and settings["cache_flush_bytes"] == 1 << 20
    )
    assert "cache_mode" not in make_runtime("ort").settings()
    with pytest.raises(ValueError, match="phone"):
        make_runtime("adb", cache_mode="cold")
    with pytest.raises(ValueError, match="known: warm, cold"):
        make_runtime("ort", cache_mode="lukewarm")


# -- validation against a scripted runtime ---------------------------------------------------------


def _lut_for(space: SpaceSpec, archs: list[str], runtime: str = "fake", *, whole: bool = False) -> LatencyTable:
    """A LUT holding every entry of ``archs`` (``whole``: of the space), latencies 20, 21, ... µs."""
    keys = list(dict.fromkeys(e.key for a in archs for e in space.entries_of(a)))
    if whole:  # a complete LUT, which `latest` may name; the archs' entries keep their latencies
        keys = list(dict.fromkeys([*keys, *(e.key for e in space.distinct_entries())]))
    return LatencyTable(
        space=space,
        entries={k: {"median": 20.0 + i} for i, k in enumerate(keys)},
        overhead_us=2.0,
        provenance={"runtime": {"runtime": runtime, "threads": 1}},
    )


def test_validation_archs_are_seeded_distinct_and_named_first() -> None:
    space = load_space("fbnet", resolution=32)
    named = space.sample(random.Random(99)).encode()
    archs = validation_archs(space, 12, seed=4, named=[named, named])
    assert archs[0] == named and len(archs) == 13 and len(set(archs)) == 13
    assert validation_archs(space, 12, seed=4, named=[named]) == archs
    assert validation_archs(space, 12, seed=5, named=[named]) != archs
    with pytest.raises(ArchitectureError):
        validation_archs(space, 1, named=["k3_e1"])


def test_validate_lut_reports_held_out_figures_and_writes_the_calibration(tmp_path: Path) -> None:
    from searcher.lut import calibrated_latency

    space = load_space("fbnet", resolution=32)
    archs = validation_archs(space, 14, seed=2)
    table = _lut_for(space, archs)
    # Whole networks take 1.08 x the LUT sum + 150 µs: the raw sum under-predicts, a linear fit is exact.
    latencies = {network_target(space, a).label: 1.08 * table.network_latency(a) + 150.0 for a in archs}
    cache = _Cache()
    result = validate_lut(table, _Runtime(latencies=latencies), CFG, n=14, seed=2, cache=cache)
    assert sorted(x[0] for x in cache.asked) == sorted(network_target(space, a).label for a in archs)
    report = result.report
    assert [r.arch for r in report.rows] == archs
    assert report.raw.mean_error_pct < -5 and report.raw.within_5 == 0.0
    assert report.calibrated is not None and report.calibrated.within_5 == 1.0
    assert report.calibration is not None
    assert report.calibration.slope == pytest.approx(1.08) and report.calibration.intercept_us == pytest.approx(150.0)
    assert report.chosen == "linear" and report.calibrated.n == 14  # every network, each out of fold
    assert {r["role"] for r in report.row_dicts()} == {"out_of_fold"}
    doc = json.loads(json.dumps(result.to_dict()))
    plan = {"seed": 2, "n": 14, "named": [], "draw": "uniform", "strata": None, "timing": "apart"}
    assert doc["plan"] == plan  # an incomplete LUT: a uniform draw
    assert len(doc["networks"]) == 14

    path = tmp_path / "lut.json"
    write_calibration(table, result, path)
    saved = LatencyTable.load(path)
    cal = saved.provenance["calibration"]
    assert cal["kind"] == "linear" and cal["chosen_by"] == "10-fold cross-validation" and len(cal["fitted_on"]) == 14
    assert saved.provenance["accuracy"]["calibrated"]["within_5"] == 1.0
    arch = archs[0]
    expected = latencies[network_target(space, arch).label]
    assert calibrated_latency(saved, space, arch) == pytest.approx(expected)


def test_validate_lut_refuses_gaps_and_another_runtime_before_measuring() -> None:
    space = load_space("fbnet", resolution=32)
    archs = validation_archs(space, 3, seed=0)
    table = _lut_for(space, archs[:2])
    cache = _Cache()
    with pytest.raises(MissingEntries):
        validate_lut(table, _Runtime(), CFG, n=3, seed=0, cache=cache)
    with pytest.raises(RuntimeMismatch, match="threads"):
        validate_lut(_lut_for(space, archs), _Runtime(threads=2), CFG, n=3, seed=0, cache=cache)
    assert cache.asked == []
    # A LUT measured with cold caches validates with the same runtime run warm.
    cold_lut = _lut_for(space, archs)
    cold_lut.provenance["runtime"] = ColdCacheRuntime(_Runtime(), flush_bytes=1 << 16, llc_bytes=1).settings()
    result = validate_lut(cold_lut, _Runtime(), CFG, n=3, seed=0, cache=cache, calibration=None)
    assert result.lut_cache_mode == "cold" and result.report.calibration is None


# -- a real small validation: 32x32, onnxruntime, end to end ----------------------------------------

QUICK = dataclasses.replace(QUICK_CFG, time_cap_s=0.3)
LOOSE = ["--precision", "0.03", "--time-cap", "0.4", "--slice", "0.01", "--warmup-time", "0.05", "--warmup-runs", "3"]


@pytest.mark.slow
def test_real_validation_at_32_on_onnxruntime_end_to_end(tmp_path: Path) -> None:
    space = load_space("fbnet", resolution=32)
    named = ",".join(["k3_e1"] * len(space.layers))
    archs = validation_archs(space, 4, seed=7, named=[named])
    needed = list(dict.fromkeys(e for a in archs for e in space.entries_of(a)))
    lut = tmp_path / "lut.json"
    profile_space(space, make_runtime("ort", threads=1), lut, QUICK, entries=needed)
    plot = tmp_path / "acc.png"
    args = ["validate", "--lut", str(lut), "--runtime", "ort", "--n", "4", "--seed", "7", "--arch", named]
    result = CliRunner().invoke(app, [*args, "--json", "--plot", str(plot), "--write-calibration", *LOOSE])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rep = doc["report"]
    assert rep["networks"] == 5 and [r["arch"] for r in rep["rows"]] == archs
    for row in rep["rows"]:
        assert row["measured_us"] > 0 and 0.3 < row["raw_us"] / row["measured_us"] < 3.0
        assert row["raw_error_pct"] == pytest.approx(100 * (row["raw_us"] / row["measured_us"] - 1))
    assert rep["raw"]["n"] == 5 and rep["overhead"] is not None
    assert rep["calibrated"]["n"] == rep["held_out"] == 5 and rep["chosen"] is not None
    assert rep["calibrated"]["mape"] <= rep["raw"]["mape"] and rep["intervals"]["raw"]["within_10"]["n"] == 5
    assert doc["runtime"]["runtime"] == "ort" and doc["lut_cache_mode"] == "warm"
    assert plot.read_bytes()[:4] == b"\x89PNG"
    saved = LatencyTable.load(lut)
    if rep["calibration"] is not None:
        assert saved.provenance["calibration"]["slope"] == rep["calibration"]["slope"]
    assert saved.provenance["accuracy"]["networks"] == 5
    assert saved.entries == LatencyTable.load(lut).entries and saved.complete is False

    text = CliRunner().invoke(app, [*args, "--calibration", "scale", *LOOSE])  # artifacts now cached
    assert text.exit_code == 0, text.output
    assert "raw LUT sum" in text.stdout and "calibrated, out of fold" in text.stdout and "verdict" in text.stdout


# -- hwlut validate --server: fetch the LUT, validate here, upload the report -----------------------


def test_validate_against_a_real_server_fetches_validates_and_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import profiler.validate
    from hwlut.cli import profile as profile_cmd
    from hwlut.cli.supervisor import local_server
    from lutclient import HwlutClient

    space = load_space("fbnet", resolution=32)
    archs = validation_archs(space, 8, seed=5)
    table = _lut_for(space, archs, whole=True)
    latencies = {network_target(space, a).label: 1.05 * table.network_latency(a) + 80.0 for a in archs}
    # The networks run on the scripted runtime, from a stand-in artifact cache (nothing is exported).
    monkeypatch.setattr(profile_cmd, "runtime_from_options", lambda *a, **k: _Runtime(latencies=latencies))
    real = profiler.validate.validate_lut
    monkeypatch.setattr(profiler.validate, "validate_lut", lambda *a, **k: real(*a, **k, cache=_Cache()))
    arch = archs[0]
    home = tmp_path / "home"
    home.mkdir()
    with local_server(home) as (url, admin, _proc):
        with HwlutClient(url, token=admin) as client:
            token = client.create_device("box")["token"]
            other = client.create_device("other")["token"]
            job_id = client.import_lut("box", json.dumps(table.to_dict()))["id"]
            assert client.architecture_latency("box", arch)["calibrated_us"] is None
        base = [
            "validate",
            "--server",
            url,
            "--device",
            "box",
            "--here",
            "--runtime",
            "ort",
            "--n",
            "8",
            "--seed",
            "5",
            "--draw",
            "uniform",
        ]  # the networks the scripted runtime knows: validation_archs' uniform draw
        refused = CliRunner().invoke(app, [*base, "--token", other], env={"COLUMNS": "200"})
        assert refused.exit_code == 1 and "not stored" in refused.output

        result = CliRunner().invoke(app, [*base, "--token", token, "--job", str(job_id)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert f"box LUT {job_id}" in result.stdout and "calibrated, out of fold" in result.stdout
        assert f"accuracy report stored on {url} for LUT {job_id} of 'box'" in result.output
        with HwlutClient(url, token=token) as client:
            stored = client.accuracy("box")
            estimate = client.architecture_latency("box", arch)
        assert stored["lut"] == job_id and [r["arch"] for r in stored["report"]["rows"]] == archs
        cal = stored["report"]["calibration"]
        assert cal["slope"] == pytest.approx(1.05) and cal["intercept_us"] == pytest.approx(80.0)
        assert estimate["calibrated_us"] == pytest.approx(latencies[network_target(space, arch).label])
        assert estimate["accuracy"]["calibrated"]["within_5"] == 1.0
        # The LUT downloaded from the server now carries the calibration: `hwlut lut show` prints it.
        with HwlutClient(url, token=token) as client:
            (tmp_path / "served.json").write_text(client.lut_text("box"))
        shown = CliRunner().invoke(app, ["lut", "show", str(tmp_path / "served.json")], env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and "serves linear: 1.0500 x sum +80.0 µs" in shown.stdout

        as_json = CliRunner().invoke(app, [*base, "--token", token, "--json"])
        assert as_json.exit_code == 0, as_json.output
        assert json.loads(as_json.stdout)["lut"] == f"{url} box LUT {job_id}"

        missing = CliRunner().invoke(app, [*base, "--device", "nobody", "--token", token])
        assert missing.exit_code == 2 and "nobody" in missing.output


def test_validate_needs_a_file_or_a_server_and_device(tmp_path: Path) -> None:
    env = {"HWLUT_SERVER": None, "COLUMNS": "200"}
    neither = CliRunner().invoke(app, ["validate"], env=env)
    assert neither.exit_code == 2 and "--lut FILE or --server URL" in neither.output
    no_device = CliRunner().invoke(app, ["validate", "--server", "http://127.0.0.1:9"], env=env)
    assert no_device.exit_code == 2 and "--server needs --device" in no_device.output
    no_server = CliRunner().invoke(app, ["validate", "--device", "d"], env=env)
    assert no_server.exit_code == 2 and "HWLUT_SERVER" in no_server.output
    no_file = CliRunner().invoke(
        app, ["validate", "--server", "http://127.0.0.1:9", "--device", "d", "--write-calibration"], env=env
    )
    assert no_file.exit_code == 2 and "uploaded to the server" in no_file.output
    lut = tmp_path / "lut.json"
    lut.write_text("{}")
    both = CliRunner().invoke(app, ["validate", "--lut", str(lut), "--device", "d"], env=env)
    assert both.exit_code == 2 and "not both" in both.output
    # The device's agent measures with the job's settings: options of a measurement here are refused.
    agent_side = ["validate", "--server", "http://127.0.0.1:9", "--device", "d"]
    refused = CliRunner().invoke(app, [*agent_side, "--runtime", "ort", "--precision", "0.02"], env=env)
    assert refused.exit_code == 2 and "--runtime, --precision" in refused.output and "--here" in refused.output
    here_alone = CliRunner().invoke(app, ["validate", "--lut", str(lut), "--here"], env=env)
    assert here_alone.exit_code == 2 and "--here" in here_alone.output
    # HWLUT_SERVER names the server; an unreachable one is exit 1 with its address.
    away = CliRunner().invoke(app, ["validate", "--device", "d"], env={**env, "HWLUT_SERVER": "http://127.0.0.1:9"})
    assert away.exit_code == 1 and "127.0.0.1:9" in away.output


def test_validate_progress_counts_measured_networks_and_the_time_left() -> None:
    from hwlut.cli.validate import progress_text

    space = load_space("fbnet", resolution=32)
    archs = validation_archs(space, 5, seed=4)
    calls: list[tuple[int, int, float]] = []
    validate_lut(
        _lut_for(space, archs), _Runtime(), CFG, n=5, seed=4, cache=_Cache(), on_progress=lambda *a: calls.append(a)
    )
    assert calls and calls[-1] == (5, 5, 1.0)
    assert all(total == 5 for _, total, _ in calls)
    counts, shares = [c[0] for c in calls], [c[2] for c in calls]
    assert counts == sorted(counts) and shares == sorted(shares) and counts[0] < 5
    # the time left comes from the rate since the first pass
    assert progress_text(2, 10, 0.5, (100.0, 0.25), 110.0) == "networks 2/10 measured, about 20s left"
    assert progress_text(1, 10, 0.1, (0.0, 0.0), 30.0) == "networks 1/10 measured, about 4m 30s left"
    assert progress_text(0, 10, 0.1, (5.0, 0.1), 5.0) == "networks 0/10 measured, estimating the time left"
    assert progress_text(10, 10, 1.0, (0.0, 0.0), 9.0) == "networks 10/10 measured"
