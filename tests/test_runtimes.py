"""Real onnxruntime and LiteRT runs of a few 32x32 entries through the protocol, and the runtime interface."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakes import QUICK_CFG

from profiler.local import profile_space
from profiler.runtimes import RuntimeUnavailable, make_runtime
from profiler.runtimes.litert import _interpreter_module
from searchspace import LatencyTable, load_space
from searchspace.fields import STAT_FIELDS

QUICK = QUICK_CFG
PROVENANCE = (
    "runtime",
    "exporter",
    "host",
    "protocol",
    "sentinel",
    "overhead",
    "started_at",
    "finished_at",
    "sessions",
)
HOST = ("cpu_model", "cores", "affinity", "affinity_mask", "governor", "os", "python")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "settings", "expect"),
    [
        ("ort", {"optimization": "all"}, {"optimization": "all", "inter_op_threads": 1, "spinning": False}),
        ("tflite", {"xnnpack": True}, {"xnnpack": True, "runtime_package": "ai-edge-litert"}),
        ("tflite", {"xnnpack": False}, {"xnnpack": False}),
    ],
)
def test_real_runtime_profiles_entries_with_every_field(
    name: str, settings: dict, expect: dict, tmp_path: Path
) -> None:
    space = load_space("fbnet", resolution=32)
    fixed = space.fixed_entries()
    entries = [fixed["fc"], fixed["pool"], space.layers[-1].entry("k3_e1")]
    out = tmp_path / "lut.json"
    runtime = make_runtime(name, threads=1, **settings)
    profile_space(space, runtime, out, QUICK, entries=entries, sentinel=fixed["fc"])
    table = LatencyTable.load(out)
    assert set(table.entries) == {e.key for e in entries} and not table.errors
    for stats in table.entries.values():
        for field in (*STAT_FIELDS, "stop_reason", "passes", "time_s"):
            assert field in stats, field
        assert stats["stop_reason"] in ("ci", "time_cap")
        assert 0 < stats["min"] <= stats["p10"] <= stats["median"] <= stats["p90"] <= stats["max"]
        assert stats["count"] >= QUICK.min_passes * QUICK.min_runs_per_pass
    prov = table.provenance
    for key in PROVENANCE:
        assert key in prov, key
    for key in HOST:
        assert key in prov["host"], key
    rt = prov["runtime"]
    assert rt["runtime"] == name and rt["threads"] == 1 and rt["runtime_version"]
    assert expect.items() <= rt.items()
    assert prov["exporter"]["versions"]["torch"].startswith("2.13")
    assert table.overhead_us is not None and table.overhead_us > 0
    assert "max_abs_drift" in prov["sentinel"] and "passes_redone" in prov["sentinel"]
    assert table.device is not None and table.device["kind"] == "local"


def test_tflite_runtime_fallback_and_absence() -> None:
    module, dist, _ = _interpreter_module((("no_such_pkg.interpreter", "nope"), ("ai_edge_litert.interpreter", "x")))
    assert dist == "x" and hasattr(module, "Interpreter")
    with pytest.raises(RuntimeUnavailable, match="tflite-runtime"):
        _interpreter_module((("no_such_pkg.interpreter", "nope"),))


def test_make_runtime_names() -> None:
    assert make_runtime("adb").name == "adb"
    assert make_runtime("ort", threads=2).settings()["threads"] == 2
    with pytest.raises(ValueError, match="known: ort, tflite"):
        make_runtime("tvm")


def test_ort_io_binding_gives_the_same_outputs_and_says_so() -> None:
    import numpy as np

    from profiler.export import ArtifactCache, entry_target

    entry = load_space("fbnet", resolution=32).layers[3].entry("k5_e6")
    artifact = ArtifactCache().get(entry_target(entry), "onnx")
    plain, bound = make_runtime("ort"), make_runtime("ort", io_binding=True)
    assert "io_binding" not in plain.settings()  # absent means off: older LUTs keep resuming
    assert bound.settings()["io_binding"] is True
    a = plain.load(artifact.path, artifact.input_shape)
    b = bound.load(artifact.path, artifact.input_shape)
    try:
        x = np.random.default_rng(3).standard_normal(artifact.input_shape, dtype=np.float32)
        np.testing.assert_allclose(a.infer(x), b.infer(x), rtol=1e-5, atol=1e-6)
        b.run_once()  # on the bound input and preallocated output
        assert b.timed_run(time.perf_counter_ns) > 0
    finally:
        a.close()
        b.close()
