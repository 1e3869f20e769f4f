"""``hwlut search`` under torchrun (2 gloo processes on the CPU), micro-batches, top-k, memory.

Two real torchrun launches on 127.0.0.1 (a free port each): a 2-process
search paused after 2 of 3 epochs, then resumed. The resumed run must end
with θ identical on both ranks, one result file, and the θ of a 1-process
run with the same global batch and seed split into 2 micro-batches — the
same arithmetic (batch-norm statistics over the same 16 samples, gradients
averaged over the same two halves), so the tolerance is float rounding
(atol 1e-6). Without micro-batches the 1-process run normalises over all 32
samples at once; that difference is measured and documented, not hidden.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_searcher import tiny_space
from typer.testing import CliRunner

from searcher import SearchConfig, Searcher, load_lut_file, proxy_task, synthetic_table
from searcher.supernet import top_k_mixture

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--proxy", "synthetic", "--proxy-samples", "256", "--epochs", "3", "--warmup", "1", "--max-steps", "2"]
ARGS += ["--batch-size", "32", "--samples", "1", "--device-type", "cpu", "--seed", "0"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lut_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lut") / "tiny.json"
    synthetic_table(tiny_space(), device="tiny-cpu").save(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(args: list[str], cwd: Path) -> str:
    """``torchrun --nproc-per-node 2 hwlut search ARGS`` on 127.0.0.1, one thread per process; its stdout."""
    hwlut = Path(sys.executable).parent / "hwlut"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    cmd += ["--master-port", str(_free_port()), "--no-python", str(hwlut), "search", *args, "--backend", "gloo"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return " ".join(proc.stdout.split())  # Rich wraps long lines


def _theta(doc: dict[str, object]) -> torch.Tensor:
    return torch.tensor([v for layer in doc["layers"] for v in layer["theta"]], dtype=torch.float64)  # type: ignore[index, union-attr]


def test_two_gloo_processes_pause_resume_and_match_one_process(lut_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    first = _torchrun(["--lut", str(lut_file), *ARGS, "--out", str(out), "--pause-after", "2"], tmp_path)
    assert "paused after epoch 2 of 3" in first
    assert (out / "checkpoint.pt").is_file() and not (out / "search_result.json").exists()
    assert first.count("epoch 2/3") == 1  # rank 0 alone prints

    second = _torchrun(["--lut", str(lut_file), *ARGS, "--out", str(out), "--resume"], tmp_path)
    assert "2 processes (gloo)" in second
    assert second.count("wrote ") == 1 and "epoch 1/3" not in second  # resumed at epoch 3
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "curves.png", "search_result.json", "theta.png"]
    doc = json.loads((out / "search_result.json").read_text())
    assert doc["distributed"] == {"world_size": 2, "backend": "gloo", "theta_max_rank_difference": 0.0}
    assert len(doc["history"]) == 3 and len(doc["peak_memory_mb"]["per_epoch"]) == 3
    ddp_theta = _theta(doc)
    assert ddp_theta.abs().sum() > 0  # θ was trained

    # one process, the same global batch of 32 and seed, split into 2 micro-batches: the same arithmetic
    table, source = load_lut_file(lut_file)
    task = proxy_task("synthetic", resolution=16, samples=256, seed=0)
    base = dict(epochs=3, warmup_epochs=1, batch_size=32, max_steps=2, samples=1, seed=0, device_type="cpu")
    single = Searcher(table, source, task, SearchConfig(**base, micro_batches=2)).run(tmp_path / "one")  # type: ignore[arg-type]
    torch.testing.assert_close(_theta(single), ddp_theta, rtol=0, atol=1e-6)
    assert single["argmax"]["arch"] == doc["argmax"]["arch"]
    for a, b in zip(single["history"], doc["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["train_acc"] == b["train_acc"] and a["arch_acc"] == b["arch_acc"]

    # without micro-batches, batch norm normalises over 32 samples instead of 2 x 16: close, not equal
    whole = Searcher(table, source, task, SearchConfig(**base)).run(tmp_path / "whole")  # type: ignore[arg-type]
    gap = float((_theta(whole) - ddp_theta).abs().max())
    assert 0 < gap < 0.1 * float(ddp_theta.abs().max())


def test_micro_batches_must_divide_the_batch_among_processes(lut_file: Path, tmp_path: Path) -> None:
    from hwlut.cli import app

    args = ["search", "--lut", str(lut_file), *ARGS, "--micro-batches", "5", "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--micro-batches" in result.output
    assert not (tmp_path / "x").exists()


def test_top_k_trains_only_the_sampled_subset(lut_file: Path, tmp_path: Path) -> None:
    m = torch.softmax(torch.tensor([[0.1, 2.0, 1.0, -1.0], [3.0, 0.0, -float("inf"), -float("inf")]]), dim=-1)
    kept, active = top_k_mixture(m, 2)
    assert active == [[1, 2], [0, 1]]
    torch.testing.assert_close(kept.sum(dim=-1), torch.ones(2))
    assert kept[0, 0] == 0 and kept[0, 3] == 0 and kept[0, 1] > kept[0, 2]
    assert top_k_mixture(m, 9)[1][1] == [0, 1]  # never a padding position

    table, source = load_lut_file(lut_file)
    task = proxy_task("synthetic", resolution=16, samples=256, seed=0)
    config = SearchConfig(epochs=2, warmup_epochs=0, batch_size=32, max_steps=2, samples=1, device_type="cpu", top_k=1)
    searcher = Searcher(table, source, task, config)
    searcher.set_phase("weights")
    searcher.step(task.images[:32], task.labels[:32], 5.0, "weights")
    ran = [sum(any(p.grad is not None for p in op.parameters()) for op in layer.ops) for layer in searcher.net.layers]
    assert max(ran) == 1  # one candidate per layer ran (none where it was the parameter-free skip)
    result = searcher.run(tmp_path / "top1")
    assert result["config"]["top_k"] == 1 and len(result["history"]) == 2
    assert all(e["weights"] > 0 and e["arch"] > 0 for e in result["peak_memory_mb"]["per_epoch"])


def test_cli_estimates_the_time_and_prints_peak_memory(lut_file: Path, tmp_path: Path) -> None:
    from hwlut.cli import app

    args = ["search", "--lut", str(lut_file), *ARGS, "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.index("estimated") < result.output.index("epoch   1/3")
    assert "3 epoch(s) x (2 weight steps x" in result.output
    assert result.output.count("peak mem/step") == 3
    doc = json.loads((tmp_path / "o" / "search_result.json").read_text())
    assert doc["distributed"]["world_size"] == 1 and doc["peak_memory_mb"]["measure"] == "peak RSS"
