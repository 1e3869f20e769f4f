"""The `hwlut space show` and `hwlut export` commands, as a user types them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from hwlut.cli import app
from profiler.runtimes import make_runtime
from searchspace import fbnet_space, parse_key

runner = CliRunner()


def test_space_show_json_lists_every_entry_in_three_renderings() -> None:
    result = runner.invoke(app, ["space", "show", "fbnet", "--resolution", "224", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["num_layers"] == 22 and doc["num_architectures"] == 9**22
    assert len(doc["entries"]) == 112
    assert sum(e["op"] in ("tbs", "skip") for e in doc["entries"]) == 108
    for item in doc["entries"]:
        entry = parse_key(item["key"])
        assert parse_key(item["hwnasbench"]) == entry == parse_key(item["proxyless"])
    assert doc["layers"][1]["entries"][0] == "tbs_h112_w112_cin16_cout24_s2_k3_e1_g1"


def test_space_show_table_and_spec_file(tmp_path) -> None:
    spec = tmp_path / "space.yaml"
    spec.write_text(fbnet_space(32).to_yaml())
    result = runner.invoke(app, ["space", "show", str(spec)])
    assert result.exit_code == 0, result.output
    assert "22 searchable layers" in result.output and "108 block entries" in result.output
    bad = runner.invoke(app, ["space", "show", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and "neither a built-in space" in bad.output


def test_export_rejects_bad_input_naming_it(tmp_path) -> None:
    result = runner.invoke(app, ["export", "tbs_h32_w32_cin24_cout32_s2_k4_e6_g1", "--out", str(tmp_path / "a.onnx")])
    assert result.exit_code == 2 and "kernel" in result.output
    arch = ",".join(["k3_e6"] * 21 + ["k9_e9"])
    result = runner.invoke(app, ["export", arch, "-r", "32", "--out", str(tmp_path / "n.onnx")])
    assert result.exit_code == 2 and "layer 21" in result.output
    result = runner.invoke(app, ["export", "fc_h1_w1_cin8_cout4_s1_k1_e1_g1", "--format", "pb"])
    assert result.exit_code == 2 and "unknown format" in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_export_an_entry_by_its_hwnasbench_key(tmp_path, fmt: str) -> None:
    out = tmp_path / f"block.{fmt}"
    key = "ConvBlock_H16_W16_Cin32_Cout64_exp3_kernel5_stride2_group1"
    result = runner.invoke(app, ["export", key, "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    rt = make_runtime("ort" if fmt == "onnx" else "tflite")
    shape = (1, 32, 16, 16) if fmt == "onnx" else (1, 16, 16, 32)
    y = rt.load(out, shape).infer(np.ones(shape, dtype=np.float32))
    assert y.shape == ((1, 64, 8, 8) if fmt == "onnx" else (1, 8, 8, 64))


def test_a_server_error_is_one_line_not_a_traceback() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = "import sys; from hwlut.cli import main; sys.argv[0] = 'hwlut'; main()"
    args = [
        "query",
        "entry",
        "fc_h1_w1_cin8_cout4_s1_k1_e1_g1",
        "--device",
        "d",
        "--server",
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: cannot reach the hwlut server at http://127.0.0.1:{port}")
    assert "GET /v1/devices/d/luts/latest/entries/" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_export_a_published_network_by_name(tmp_path) -> None:
    out = tmp_path / "fbnet-c.onnx"
    result = runner.invoke(app, ["export", "FBNet-C", "-r", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    y = make_runtime("ort").load(out, (1, 3, 32, 32)).infer(np.ones((1, 3, 32, 32), dtype=np.float32))
    assert y.shape == (1, 100)  # the 32x32 space's classifier
