"""``hwlut profile`` as a real process: killed with SIGKILL it leaves a valid file, and resumes from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchspace import LatencyTable

ARGS = [
    "profile", "--runtime", "ort", "-r", "32", "--limit", "6", "--batch-size", "2",
    "--precision", "0.000001", "--time-cap", "0.3", "--slice", "0.02", "--warmup-time", "0.05",
]  # fmt: skip


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-c", "from hwlut.cli import main; main()", *ARGS, "--out", str(out)]


def _partial(out: Path) -> dict | None:
    try:
        doc = json.loads(out.read_text())
    except (OSError, ValueError):
        return None
    return doc if doc.get("entries") else None


@pytest.mark.slow
def test_kill_9_leaves_a_valid_partial_file_and_the_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "lut.json"
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 180
    try:
        while _partial(out) is None:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "no partial LUT in time"
            time.sleep(0.01)  # polling interval, not a wait for a result
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    partial = LatencyTable.load(out)  # valid JSON, a valid LUT
    kept = dict(partial.entries)
    assert 1 <= len(kept) < 6 and not partial.complete

    done = subprocess.run(_cmd(out), capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    table = LatencyTable.load(out)
    assert len(table.entries) == 6 and not table.errors
    for key, stats in kept.items():
        assert table.entries[key] == stats  # not measured again
    assert len(table.provenance["sessions"]) == 2
    assert table.provenance["sessions"][1]["measured"] == 6 - len(kept)
    assert "partial" in done.stderr  # 6 of the space's 112 entries


def test_normalize_records_each_entrys_sentinel_factor(tmp_path: Path) -> None:
    out = tmp_path / "norm.json"
    args = ["profile", "--runtime", "ort", "-r", "32", "--limit", "3", "--time-cap", "0.3", "--slice", "0.01"]
    done = subprocess.run(
        [sys.executable, "-c", "from hwlut.cli import main; main()", *args, "--normalize", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = LatencyTable.load(out)
    assert table.provenance["protocol"]["normalize"] is True
    assert len(table.entries) == 3
    for stats in table.entries.values():
        assert 0.5 < stats["sentinel_factor"] < 2.0


def test_litert_luts_default_to_the_l2_cache_mode(tmp_path: Path) -> None:
    args = ["profile", "--runtime", "tflite", "-r", "32", "--limit", "2", "--time-cap", "0.2", "--slice", "0.01"]
    done = subprocess.run(
        [sys.executable, "-c", "from hwlut.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (out,) = tmp_path.glob("lut-fbnet-32-tflite-1t.json")  # the runtime's default mode: no suffix
    table = LatencyTable.load(out)
    assert table.provenance["runtime"]["cache_mode"] == "l2"
    assert table.provenance["runtime"]["cache_flush_bytes"] >= 1 << 16
    assert len(table.entries) == 2
    session = table.provenance["sessions"][-1]  # the eviction's time is said apart from inference
    assert 0 < session["cache_eviction_s"] < session["wall_s"] - session["inference_s"]
    from profiler.report import lut_summary

    summary = lut_summary(table)  # what `hwlut lut show` prints
    assert summary["cache_eviction_share"] == pytest.approx(session["cache_eviction_s"] / summary["wall_s"])


def test_the_commands_protocol_defaults_are_the_protocols() -> None:
    """``hwlut profile``, ``measure-arch`` and ``validate`` default to ProtocolConfig's own settings."""
    from hwlut.cli import options
    from profiler.protocol import ProtocolConfig

    config = ProtocolConfig()
    given = options.protocol_config(
        precision=options.DEFAULT_PRECISION,
        time_cap=options.DEFAULT_TIME_CAP,
        slice_s=options.DEFAULT_SLICE_S,
        min_passes=options.DEFAULT_MIN_PASSES,
        warmup_runs=options.DEFAULT_WARMUP_RUNS,
        warmup_time=options.DEFAULT_WARMUP_TIME,
    )
    assert given == config
    assert options.PROTOCOL_DEFAULTS.config() == config


@pytest.mark.parametrize("command", ["profile", "measure-arch", "validate"])
def test_the_protocol_options_are_declared_once_for_every_command(command: str) -> None:
    """The six protocol options reach each command from one declaration (``protocol_options``), as one value."""
    import typer.main

    from hwlut.cli import app
    from hwlut.cli.options import PROTOCOL_DEFAULTS

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    params = {p.name: p for p in click_command.params}
    flags = {"precision": "--precision", "time_cap": "--time-cap", "slice_s": "--slice"}
    flags |= {"min_passes": "--min-passes", "warmup_runs": "--warmup-runs", "warmup_time": "--warmup-time"}
    for name, flag in flags.items():
        assert params[name].opts == [flag]
        assert params[name].default == getattr(PROTOCOL_DEFAULTS, name)
    assert "protocol" not in params
