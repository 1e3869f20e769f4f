"""The ``l2`` cache mode: the L2 evicted before every timed run, the last-level cache kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.export import ArtifactCache, entry_target
from profiler.protocol import ProtocolConfig, measure_single
from profiler.runtimes import make_runtime
from profiler.runtimes.coldcache import CACHE_MODES, ColdCacheRuntime, eviction_seconds, l2_cache_bytes, with_cache_mode
from searchspace import fbnet_space


def _sysfs(root: Path, caches: list[tuple[int, str, str]]) -> Path:
    for i, (level, kind, size) in enumerate(caches):
        d = root / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return root


def test_l2_size_from_sysfs(tmp_path: Path) -> None:
    root = _sysfs(
        tmp_path, [(1, "Data", "48K"), (1, "Instruction", "64K"), (2, "Unified", "2048K"), (3, "Unified", "480M")]
    )
    assert l2_cache_bytes(root) == 2 << 20
    assert l2_cache_bytes(tmp_path / "nowhere") is None
    detected = l2_cache_bytes()
    assert detected is None or detected >= 1 << 16


def test_l2_mode_flushes_twice_the_l2_and_says_so() -> None:
    assert "l2" in CACHE_MODES
    runtime = with_cache_mode(make_runtime("ort"), "l2")
    assert isinstance(runtime, ColdCacheRuntime) and runtime.mode == "l2"
    assert runtime.flush_bytes == 2 * (l2_cache_bytes() or 2 << 20)
    settings = runtime.settings()
    assert settings["cache_mode"] == "l2" and settings["cache_flush_bytes"] == runtime.flush_bytes
    assert settings["runtime"] == "ort"
    assert make_runtime("ort", cache_mode="l2", cache_flush_bytes=1 << 20).settings()["cache_flush_bytes"] == 1 << 20
    with pytest.raises(ValueError, match="cache mode"):
        with_cache_mode(make_runtime("ort"), "l3")


@pytest.mark.parametrize("name", ["ort", "tflite"])
def test_l2_mode_measures_a_real_entry_and_flushes_before_each_timed_run(name: str) -> None:
    runtime = with_cache_mode(make_runtime(name), "l2")
    assert isinstance(runtime, ColdCacheRuntime)
    entry = fbnet_space(32).layers[3].entry("k3_e3")
    artifact = ArtifactCache().get(entry_target(entry), runtime.format)
    model = runtime.load(artifact.path, artifact.input_shape)
    try:
        cfg = ProtocolConfig(
            warmup_runs=2,
            warmup_s=0.0,
            time_cap_s=0.2,
            slice_s=0.01,
            sentinel_slice_s=0.005,
            min_passes=2,
            min_runs_per_pass=3,
        )
        result = measure_single(entry.key, model, cfg)
    finally:
        model.close()
    assert result.summary is not None and result.summary.median > 0
    assert runtime.flusher.touches >= len(result.samples)
    evicting = eviction_seconds(runtime)
    assert evicting is not None and 0 < evicting < runtime.flusher.touches * 0.01  # each read well under 10 ms
    assert eviction_seconds(make_runtime(name)) is None  # a warm runtime evicts nothing


def test_each_runtime_has_a_default_cache_mode() -> None:
    from profiler.runtimes import default_cache_mode
    from profiler.runtimes.coldcache import DEFAULT_CACHE_MODES

    assert default_cache_mode("tflite") == "l2" and default_cache_mode("litert") == "l2"
    assert default_cache_mode("ort") == "warm" and default_cache_mode("onnxruntime") == "warm"
    assert default_cache_mode("adb") == "warm"  # a phone's caches are not this machine's to evict
    assert set(DEFAULT_CACHE_MODES.values()) <= set(CACHE_MODES)
