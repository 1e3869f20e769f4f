"""The adb runtime: benchmark_model's output parsed in both forms, and the whole path against a stand-in adb."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from profiler.protocol import ProtocolConfig
from profiler.runtimes.adb import AdbRuntime, BenchmarkModelError, parse_benchmark_output
from searchspace import load_space

# What TFLite's benchmark_model prints (classic stat lines, tensorflow/lite/tools/benchmark).
CLASSIC = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [1]
Graph: [/data/local/tmp/hwlut-0123456789abcdef.tflite]
#threads used for CPU inference: [1]
Use xnnpack: [1]
Loaded model /data/local/tmp/hwlut-0123456789abcdef.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 0.023144
Initialized session in 4.391ms.
Running benchmark for at least 10 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=412 first=1960 curr=1187 min=1150 max=1960 avg=1213.7 std=52

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=839 first=1203 curr=1187 min=1150 max=1320 avg=1190.4 std=31

Inference timings in us: Init: 4391, First inference: 1960, Warmup (avg): 1213.7, Inference (avg): 1190.4
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the \
actual memory footprint of the model at runtime. Take the information at your sole discretion.
Memory footprint delta from the start of the tool (MB): init=2.48438 overall=3.01953
"""

# LiteRT's newer form: percentiles on the stat line.
LITERT = """\
INFO: STARTING!
INFO: Graph: [/data/local/tmp/hwlut-0123456789abcdef.tflite]
INFO: Running benchmark for at least 10 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=905 curr=880 min=861 max=905 avg=879.52 std=9 p5=866 median=878 p95=899
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=1139 first=881 curr=877 min=858 max=1044 avg=877.9 std=11 p5=862 median=876 p95=897
INFO: Inference timings in us: Init: 3120, First inference: 1502, Warmup (avg): 879.52, Inference (avg): 877.9
"""

ALL_SAME = "count=50 curr=640(all same)\n"
FAILED = """\
STARTING!
Graph: [/data/local/tmp/missing.tflite]
ERROR: Could not open '/data/local/tmp/missing.tflite'.
Failed to mmap model /data/local/tmp/missing.tflite
Benchmarking failed.
"""


def test_parse_classic_form() -> None:
    r = parse_benchmark_output(CLASSIC)
    assert r.inference_avg_us == 1190.4
    assert (r.count, r.min_us, r.max_us, r.std_us) == (839, 1150, 1320, 31)
    assert r.init_us == 4391 and r.first_us == 1960 and r.warmup_avg_us == 1213.7
    assert r.median_us is None


def test_parse_litert_form_with_percentiles() -> None:
    r = parse_benchmark_output(LITERT)
    assert r.inference_avg_us == 877.9
    assert (r.p5_us, r.median_us, r.p95_us) == (862, 876, 897)
    assert r.count == 1139 and r.warmup["count"] == 50


def test_parse_stat_line_without_timings_line_and_all_same() -> None:
    assert parse_benchmark_output(CLASSIC.split("Inference timings")[0]).inference_avg_us == 1190.4
    r = parse_benchmark_output(ALL_SAME)
    assert r.inference_avg_us == 640 and r.std_us == 0


@pytest.mark.parametrize("text", [FAILED, "", "Segmentation fault\n"])
def test_unparsable_output_is_a_clear_error(text: str) -> None:
    with pytest.raises(BenchmarkModelError, match="no inference timing"):
        parse_benchmark_output(text)


STAND_IN = """\
#!{python}
\"\"\"A stand-in for adb: a 'phone' is a folder; benchmark_model prints the real tool's format.\"\"\"
import os, shlex, shutil, sys, hashlib
root = os.environ["FAKE_ADB_ROOT"]
args = sys.argv[1:]
if args[:1] == ["-s"]:
    args = args[2:]
with open(os.path.join(root, "log.txt"), "a") as fh:
    fh.write(" ".join(args) + "\\n")
def local(p):
    return os.path.join(root, "phone", p.lstrip("/"))
if args[0] == "push":
    os.makedirs(os.path.dirname(local(args[2])), exist_ok=True)
    shutil.copyfile(args[1], local(args[2]))
    print(f"{{args[1]}}: 1 file pushed.")
    sys.exit(0)
if args[0] != "shell":
    sys.exit("adb: unknown command " + args[0])
cmd = shlex.split(" ".join(args[1:]))
if cmd[0] == "getprop":
    print({{"ro.product.model": "Stand-in 1", "ro.build.version.release": "14"}}.get(cmd[1], ""))
    sys.exit(0)
if cmd[:2] == ["rm", "-f"]:
    if os.path.exists(local(cmd[2])):
        os.remove(local(cmd[2]))
    sys.exit(0)
if cmd[0] == "taskset":
    cmd = cmd[2:]
if cmd[0].endswith("benchmark_model"):
    flags = dict(a[2:].split("=", 1) for a in cmd[1:])
    graph = local(flags["graph"])
    if not os.path.exists(graph):
        print(f"ERROR: Could not open '{{flags['graph']}}'.")
        sys.exit(1)
    if os.environ.get("FAKE_ADB_FAIL") and os.environ["FAKE_ADB_FAIL"] in flags["graph"]:
        print("ERROR: Node number 3 (CONV_2D) failed to prepare.")
        print("Benchmarking failed.")
        sys.exit(1)
    avg = 100 + int(hashlib.sha256(open(graph, "rb").read()).hexdigest()[:4], 16) % 900
    print("STARTING!")
    print(f"Graph: [{{flags['graph']}}]")
    print(f"count={{flags['warmup_runs']}} first={{avg*2}} curr={{avg}} min={{avg}} max={{avg*2}} avg={{avg+1}} std=3")
    print(f"count={{flags['num_runs']}} first={{avg}} curr={{avg}} min={{avg-2}} max={{avg+9}} avg={{avg}} std=2")
    t = f"Init: 3000, First inference: {{avg*2}}, Warmup (avg): {{avg+1}}, Inference (avg): {{avg}}"
    print("Inference timings in us: " + t)
    sys.exit(0)
sys.exit("stand-in: unknown shell command: " + " ".join(cmd))
"""


@pytest.fixture
def stand_in_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``adb`` first on PATH; the phone's /data/local/tmp is a folder under the returned root."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(STAND_IN.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "adbroot"
    (root / "phone").mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    return root


@pytest.mark.slow
def test_adb_end_to_end_against_stand_in(stand_in_adb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from profiler.export import ArtifactCache, entry_target
    from profiler.local import profile_space

    space = load_space("fbnet", resolution=32)
    entries = [space.fixed_entries()["fc"], space.fixed_entries()["pool"], space.fixed_entries()["head"]]
    failing = ArtifactCache().get(entry_target(entries[2]), "tflite")
    monkeypatch.setenv("FAKE_ADB_FAIL", failing.sha256[:16])
    runtime = AdbRuntime(threads=2, num_runs=30, warmup_runs=5, cpu_mask="f0", serial="emulator-5554")
    cfg = ProtocolConfig(
        warmup_runs=1,
        warmup_s=0.0,
        entry_warmup_s=0.0,
        slice_s=0.0,
        sentinel_slice_s=0.0,
        min_runs_per_pass=1,
        min_passes=3,
    )
    out = tmp_path / "phone.json"
    table = profile_space(space, runtime, out, cfg, entries=entries, sentinel=entries[0])

    assert set(table.entries) == {entries[0].key, entries[1].key}
    assert entries[2].key in table.errors and "failed to prepare" in table.errors[entries[2].key]
    for e in entries[:2]:
        stats = table.entries[e.key]
        assert 100 <= stats["median"] < 1000 and stats["std"] == 0 and stats["stop_reason"] == "ci"
    assert table.device == {"kind": "android", "model": "Stand-in 1", "android": "14", "serial": "emulator-5554"}
    assert table.provenance["runtime"]["runtime"] == "adb"
    assert table.overhead_us is not None
    log = (stand_in_adb / "log.txt").read_text().splitlines()
    bench = [line for line in log if "benchmark_model" in line]
    assert bench and all(
        line.startswith("shell taskset f0 /data/local/tmp/benchmark_model --graph=/data/local/tmp/hwlut-")
        and "--num_threads=2 --num_runs=30 --warmup_runs=5 --use_xnnpack=true" in line
        for line in bench
    )
    assert any(line.startswith("push ") for line in log) and any(line.startswith("shell rm -f") for line in log)
    assert list((stand_in_adb / "phone" / "data" / "local" / "tmp").iterdir()) == []  # every file removed
    assert json.loads(out.read_text())["errors"] == table.errors


def test_adb_missing_binary_and_bad_output(stand_in_adb: Path, tmp_path: Path) -> None:
    runtime = AdbRuntime(benchmark_binary="/data/local/tmp/benchmark_model")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not really a model")
    loaded = runtime.load(model, (1, 1))
    remote = loaded.remote  # type: ignore[attr-defined]
    assert (stand_in_adb / "phone" / remote.lstrip("/")).exists()
    assert loaded.timed_run(lambda: 0) > 0
    loaded.close()
    assert not (stand_in_adb / "phone" / remote.lstrip("/")).exists()
    with pytest.raises(BenchmarkModelError, match="exit status 1"):
        runtime.benchmark("/data/local/tmp/absent.tflite")
    gone = AdbRuntime(adb="no-such-adb-here")
    from profiler.runtimes import RuntimeUnavailable

    with pytest.raises(RuntimeUnavailable, match="not on PATH"):
        gone.shell("true")
    assert "taskset" not in runtime.command("/x.tflite")
    assert textwrap.dedent(runtime.command("/x.tflite")).endswith("--use_xnnpack=true")
