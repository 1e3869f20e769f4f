"""``hwlut quickstart`` end to end in a subprocess: its own server, device, jobs, agents, summary, LUT files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_quickstart_serves_what_it_measured(tmp_path: Path) -> None:
    log = tmp_path / "quickstart.log"
    out = tmp_path / "luts"
    cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "quickstart", "--quick", "--limit", "5"]
    cmd += ["--serve", "--device", "qs-box", "--out", str(out)]
    env = {**os.environ, "COLUMNS": "200"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while "keeps running" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        url = re.search(r"one entry\s+curl -s (\S+)", text).group(1)
        assert url.startswith("http://127.0.0.1:")
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200 and answer.json()["latency_us"] > 0
        for runtime in ("ort", "tflite"):
            lut = json.loads((out / f"qs-box-fbnet32-{runtime}.json").read_text())
            assert len(lut["entries"]) == 5 and lut["provenance"]["runtime"]["runtime"] == runtime
        assert "Fastest and slowest block per layer" in text and "Noise" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
        with pytest.raises(httpx.TransportError):  # the server stopped with it
            httpx.get(url, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
