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
        phases = re.search(r"phases: server start [\d.]+ s, export [\d.]+ s, (.*); total ([\d.]+) s", text)
        assert phases, text
        assert "measuring onnxruntime" in phases.group(1) and "measuring LiteRT" in phases.group(1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
        with pytest.raises(httpx.TransportError):  # the server stopped with it
            httpx.get(url, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_summary_prints_raw_and_calibrated_accuracy_per_runtime() -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from hwlut.cli import app
    from hwlut.cli.quickstart_view import Run, accuracy_summary
    from searchspace.accuracy import NetworkRow, accuracy_report

    def doc(slope: float, intercept: float) -> dict:
        rows = [NetworkRow(f"net{i}", slope * (1000.0 + 37 * i) + intercept, 1000.0 + 37 * i, 26) for i in range(10)]
        return {"plan": {"seed": 0}, "report": accuracy_report(rows, overhead_us=1.0).to_dict()}

    runs = [Run("ort", "onnxruntime", 1, accuracy=doc(1.1, -60.0)), Run("tflite", "LiteRT", 2, accuracy=doc(1.2, 5))]
    console = Console(record=True, width=200)
    accuracy_summary(console, runs)
    text = console.export_text()
    assert "against 10 whole networks" in text and "seed 0" in text
    lines = [line for line in text.splitlines() if "│ LiteRT" in line or "│ onnxruntime" in line]
    assert len(lines) == 4 and "raw LUT sum" in lines[0] and "calibrated (linear)" in lines[1]
    assert "│ 10 " in lines[1] and "100% (≥74%)" in lines[1] and re.search(r"[+-]0\.0%", lines[1])  # exact fit
    assert "onnxruntime calibration: linear 1.100 × sum -60.0 µs (chosen by 10-fold cross-validation" in text
    assert "LiteRT calibration: linear 1.200 × sum +5.0 µs" in text
    assert "onnxruntime verdict: ROUGH — 10 networks, 10 within ±10% (calibrated)" in text
    quick = Console(record=True, width=100)
    accuracy_summary(quick, runs[:1], quick=True)
    quick_text = quick.export_text()
    assert "QUICK LOOK" in quick_text and "quick mode" in quick_text
    # A partial LUT (--limit) cannot price whole networks.
    refused = CliRunner().invoke(app, ["quickstart", "--quick", "--limit", "5", "--networks", "3"])
    assert refused.exit_code == 2 and "--networks 0" in refused.output


def test_the_phase_line_adds_up() -> None:
    from hwlut.cli.quickstart_view import phase_line

    phases = {"server start": 2.04, "export": 95.3, "measuring onnxruntime": 16.7, "measuring LiteRT": 21.4}
    line = phase_line(phases, 140.0)
    assert line == (
        "phases: server start 2.0 s, export 95.3 s, measuring onnxruntime 16.7 s, measuring LiteRT 21.4 s, "
        "other 4.6 s; total 140.0 s"
    )
    assert phase_line({}, 3.0) == "phases: other 3.0 s; total 3.0 s"


def test_the_summary_tables_render_the_lut_show_summaries() -> None:
    """Fastest/slowest per layer from report.layer_grid (layers of one shape merged), noise from lut_summary."""
    from rich.console import Console

    from hwlut.cli.quickstart_view import Run, summary
    from profiler.report import lut_summary
    from searcher.lut import synthetic_table
    from searchspace import fbnet_space

    space = fbnet_space(32)
    table = synthetic_table(space, device="box")
    table.provenance["calm"] = {"count": 3, "waited_s": 1.5, "not_calm": 1, "threshold": 0.05, "gates": []}
    run = Run("ort", "onnxruntime", 1, wall_s=12.5, passes=7, redone=1, drifts=[0.01, -0.04], lut=table)
    console = Console(record=True, width=200)
    summary(console, space, [run])
    text = console.export_text()
    layer = space.layers[3]  # inside the 24-channel stage, merged with the layers of its shape
    timed = {c: table.entries[layer.entry(c).key]["median"] for c in layer.candidate_names if c != "skip"}
    fast = min(timed, key=timed.get)
    row = next(line for line in text.splitlines() if "│ 2-4 " in line)
    assert f"{fast} {timed[fast]:.1f}" in row
    noise = next(line for line in text.splitlines() if "│ onnxruntime" in line)
    s = lut_summary(table)
    assert f"│ {s['entries']} " in noise and "│ 12.5 " in noise and "│ 7 " in noise and "4.0%" in noise
    assert "1.5 (1 gave up)" in noise  # the calm gates' wait


def test_serving_stops_on_a_signal_or_when_the_server_exits() -> None:
    """--serve waits with handlers of its own: SIGTERM (or Ctrl-C) ends the wait, as does the server's exit."""
    import threading

    from hwlut.cli.supervisor import until_signalled

    before = signal.getsignal(signal.SIGTERM)
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = time.monotonic()
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with until_signalled(server):
            pass
        assert time.monotonic() - started < 10 and server.poll() is None
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        server.kill()
        server.wait()
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    with until_signalled(done):
        pass
    assert done.returncode == 0
