"""Ctrl-C / SIGTERM during a real export: one line, exit 130, no worker left, only whole artifacts in the cache.

The commands run as real subprocesses in their own process group (a terminal's
Ctrl-C reaches the whole foreground group: ``os.killpg``); what is left of the
group afterwards is read from ``/proc`` (no psutil).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiler.export import ArtifactCache, entry_target, export_many
from profiler.local import default_sentinel
from profiler.protocol import TRIVIAL_ENTRY
from searchspace import fbnet_space

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]

SPACE = fbnet_space(32)
CLI = "import sys; from hwlut.cli import main; sys.argv[0] = 'hwlut'; main()"
#: Entries of the profile run: enough for several grouped exporter calls in two workers.
LIMIT = 6


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (zombies excluded), read from ``/proc/*/stat``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _wait_for(check, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command ended ({proc.returncode}) before {what}: {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout} s")


def _finished(home: Path) -> dict[Path, int]:
    """The cache's finished artifacts (those with a sidecar), with their modification times."""
    return {p: p.stat().st_mtime_ns for p in (home / "artifacts").glob("*/*/*.json")}


def _start(args: list[str], home: Path, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWLUT_")}
    env |= {"HWLUT_HOME": str(home), "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def _assert_clean_end(proc: subprocess.Popen, home: Path, code: int) -> str:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    _wait_for(lambda: not _group_members(proc.pid), "end of every worker process", timeout=20)
    left = [p for p in (home / "artifacts").rglob("*") if p.name.startswith(".tmp-") or p.suffix == ".tmp"]
    assert not left, left  # no half-written artifact, no temporary folder
    return err


def test_ctrl_c_during_profile_export(tmp_path: Path) -> None:
    """SIGINT to the group mid-export: exit 130, one line, no worker left; a rerun reuses what was finished.

    The rerun is first ``export_many`` itself (the call ``hwlut profile`` makes, here with a progress
    callback: one call per artifact, 1, 2, ..., the cached ones first), then the command.
    """
    home = tmp_path / "home"
    args = ["profile", "--runtime", "ort", "-r", "32", "--limit", str(LIMIT), "--out", "lut.json"]
    args += ["--time-cap", "0.05", "--slice", "0.005", "--min-passes", "2", "--warmup-runs", "1"]
    proc = _start(args, home, tmp_path)
    _wait_for(lambda: _finished(home), "finished artifact", proc=proc)
    assert len(_group_members(proc.pid)) > 1  # the export workers are running
    os.killpg(proc.pid, signal.SIGINT)
    err = _assert_clean_end(proc, home, 130)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], err
    kept = _finished(home)
    assert 0 < len(kept) < LIMIT + 2

    entries = SPACE.distinct_entries()[:LIMIT]
    jobs = [(entry_target(e), "onnx") for e in (TRIVIAL_ENTRY, default_sentinel(SPACE), *entries)]
    calls: list[tuple[int, int]] = []
    done: list[Path] = []
    counted = lambda n, total: calls.append((n, total))  # noqa: E731
    export_many(
        ArtifactCache(home / "artifacts"), jobs, workers=2, on_progress=counted, on_done=lambda a: done.append(a.path)
    )
    assert calls == [(n, len(jobs)) for n in range(1, len(jobs) + 1)]
    assert {p.with_suffix(".json") for p in done[: len(kept)]} == set(kept)  # the cached ones first
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items())  # reused, not exported again
    finished = _finished(home)
    assert len(finished) == len(jobs)

    rerun = _start(args, home, tmp_path)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert _finished(home) == finished  # the command exported nothing again
    assert f"{LIMIT}/{LIMIT} entries" in err, err


def test_sigterm_to_profile_leaves_no_worker(tmp_path: Path) -> None:
    """SIGTERM to the parent alone (as ``kill PID`` does) mid-export: ends as interrupted, its workers too."""
    home = tmp_path / "home"
    args = ["profile", "--runtime", "ort", "-r", "32", "--limit", str(LIMIT), "--out", "lut.json"]
    proc = _start(args, home, tmp_path)
    _wait_for(lambda: len(_group_members(proc.pid)) > 2, "export workers", proc=proc)
    os.kill(proc.pid, signal.SIGTERM)
    err = _assert_clean_end(proc, home, 130)
    assert err.strip().startswith("interrupted") and len(err.strip().splitlines()) == 1, err


def test_workers_end_with_a_parent_killed_outright(tmp_path: Path) -> None:
    """SIGKILL to the parent mid-export (no cleanup of its own): its workers end too, no temporary folder left."""
    home = tmp_path / "home"
    proc = _start(
        ["profile", "--runtime", "ort", "-r", "32", "--limit", str(LIMIT), "--out", "lut.json"], home, tmp_path
    )
    try:
        _wait_for(lambda: _finished(home), "finished artifact", proc=proc)  # the workers are exporting
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
        # A worker handles its SIGTERM between bytecodes: inside one long exporter call that can take
        # a while on a busy machine (a CI run once needed over 20 s), hence the generous bound.
        _wait_for(lambda: not _group_members(proc.pid), "end of every worker process", timeout=90)
    finally:
        if _group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)  # a failed run leaves nothing behind for the next test
        proc.communicate(timeout=20)  # (the resource tracker warns of the semaphores the killed parent left)
    assert not list((home / "artifacts").rglob(".tmp-*"))


def test_ctrl_c_during_single_export(tmp_path: Path) -> None:
    """``hwlut export`` (one artifact, in-process): Ctrl-C gives one line and exit 130, no temporary file."""
    home = tmp_path / "home"
    proc = _start(["export", SPACE.layers[3].entry("k5_e6").key, "--out", "m.onnx"], home, tmp_path)
    _wait_for(lambda: list((home / "artifacts").glob("*/.tmp-*")), "export in progress", proc=proc)
    os.killpg(proc.pid, signal.SIGINT)
    err = _assert_clean_end(proc, home, 130)
    assert err.strip() == "interrupted", err
    assert not (tmp_path / "m.onnx").exists()
