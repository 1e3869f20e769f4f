"""``hwlut search`` stopped by Ctrl-C (SIGINT): where it stopped, how to continue, exit 130, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from searcher import synthetic_table
from searchspace import fbnet_space


def test_ctrl_c_says_where_the_search_stopped_and_how_to_resume(tmp_path: Path) -> None:
    lut = tmp_path / "lut.json"
    synthetic_table(fbnet_space(32), device="tiny-cpu").save(lut)
    out, log = tmp_path / "out", tmp_path / "stdout.log"
    args = ["search", "--lut", str(lut), "--proxy", "synthetic", "--proxy-samples", "32", "--epochs", "9"]
    args += ["--warmup", "1", "--max-steps", "2", "--batch-size", "8", "--samples", "1", "--width-mult", "0.25"]
    args += ["--device-type", "cpu", "--threads", "1", "--out", str(out)]
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", *args]
    env = {**os.environ, "COLUMNS": "300"}
    with open(log, "wb") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while "epoch   1/9" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text, err = log.read_text(), stderr.decode()
    line = next(s for s in text.splitlines() if "epoch   1/9" in s)
    assert " loss " in line and " (w) " in line and "E[LAT] " in line  # loss and expected latency per epoch
    assert proc.returncode == 130, err
    assert "Traceback" not in err + text
    done = int(err.split("interrupted in epoch ")[1].split(" ")[0]) - 1
    assert done >= 1 and f"of 9 (checkpoint of epoch {done} in {out})" in err
    assert "resume with hwlut search --lut" in err and err.rstrip().endswith("--resume")
    assert (out / "checkpoint.pt").is_file()
