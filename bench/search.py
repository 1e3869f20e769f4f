"""Benchmark of the searcher: what the latency term costs per step, and a short proxy search.

1. Time per training step with and without the latency term
   (``CE * alpha * log(LAT) ** beta`` vs ``CE * alpha``), for the θ step and
   the weight step. The variants are interleaved (with, without, without,
   with, ...) so that a slow spell of a shared machine touches both alike;
   medians and their ratio are printed (goal: ratio <= 1.01).
2. The latency term alone (forward + backward of the LUT-tensor op).
3. Wall time of a proxy search of a few epochs, end to end (checkpoints and
   result included).

``--scale`` runs instead (each measurement in a fresh process, 1 thread each):

4. Steps per second for 1 and 2 processes (torchrun, gloo), same global batch.
5. Peak memory per step (RSS on CPU, ``max_memory_allocated`` on CUDA) at
   width 1.0 and 0.25, 32x32 and 224x224 (224: a few steps), full mixture
   and ``--top-k 2``.
6. The sampled subset's effect: a proxy search (digits) with the full
   mixture and with top-2 per step, same seed: argmax architectures, their
   LUT latency, wall time.

Usage::

    python bench/search.py                       # FBNet 32x32, width 0.25, CPU
    python bench/search.py --device-type cuda    # on a GPU (bf16/fp16 autocast)
    python bench/search.py --lut my.json --rounds 40 --epochs 3
    python bench/search.py --scale               # sections 4-6 (several minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# bench/ holds a profile.py that would shadow the standard library's `profile` (torch imports cProfile)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from searcher import SearchConfig, Searcher, load_lut_file, proxy_task, synthetic_table  # noqa: E402
from searcher.data import iterate_batches  # noqa: E402
from searcher.distributed import DistContext, process_group  # noqa: E402
from searchspace import fbnet_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- 4-6: scale (each measurement in a process of its own) ------------------------------------------


def _searcher(args: argparse.Namespace, ctx: DistContext) -> Searcher:
    table, source = load_lut_file(args.lut)
    data = proxy_task("synthetic", resolution=args.resolution, samples=(args.steps + 2) * args.batch_size * 5 // 4)
    config = SearchConfig(
        batch_size=args.batch_size, width_mult=args.width_mult, top_k=args.top_k, device_type=args.device_type
    )
    return Searcher(table, source, data, config, dist=ctx)


def _timed_steps(s: Searcher, phase: str, steps: int) -> tuple[float, int]:
    """Seconds per step of ``phase`` (``steps`` timed after one untimed) and the peak bytes of one step."""
    s.set_phase(phase)
    batches = iterate_batches(s.train_set, s.weight_idx, s.config.batch_size, s.generator, ctx=s.dist)
    batches = [next(batches) for _ in range(min(steps + 1, len(s.weight_idx) // s.config.batch_size))]
    s.step(*batches[0], 5.0, phase)
    peak = 0
    _sync(s.device)
    t0 = time.perf_counter()
    for x, y in batches[1:]:
        s.memory.reset()
        s.step(x, y, 5.0, phase)
        peak = max(peak, s.memory.peak_bytes())
    _sync(s.device)
    return (time.perf_counter() - t0) / len(batches[1:]), peak


def _worker(args: argparse.Namespace) -> None:
    """One measurement (``--worker``), run by the parent through a subprocess or torchrun; prints JSON."""
    torch.set_num_threads(1)
    with process_group("auto", args.device_type) as ctx:
        s = _searcher(args, ctx)
        out: dict[str, Any] = {"world_size": ctx.world_size, "measure": s.memory.kind}
        for phase in ("weights", "arch"):
            seconds, peak = _timed_steps(s, phase, args.steps)
            out[phase] = {"steps_per_s": 1 / seconds, "peak_mb": peak / 2**20}
        if ctx.is_main:
            print(json.dumps(out), flush=True)


def _run_worker(
    lut: Path,
    res: int,
    width: float,
    batch: int,
    steps: int,
    *,
    procs: int = 1,
    top_k: int | None = None,
    device_type: str = "cpu",
) -> dict[str, Any] | str:
    cmd = [sys.executable]
    if procs > 1:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd += [
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={procs}",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
        ]
    cmd += [
        __file__,
        "--worker",
        "--lut",
        str(lut),
        "--resolution",
        str(res),
        "--width-mult",
        str(width),
        "--batch-size",
        str(batch),
        "--steps",
        str(steps),
        "--device-type",
        device_type,
    ]
    cmd += [] if top_k is None else ["--top-k", str(top_k)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return f"failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    return json.loads(lines[-1])


def _scale(args: argparse.Namespace, tmp: Path) -> None:
    luts = {}
    for res in (32, 224):
        luts[res] = tmp / f"fbnet{res}.json"
        synthetic_table(fbnet_space(res)).save(luts[res])
    print(f"torch {torch.__version__}; {os.cpu_count()} CPU(s); load average {os.getloadavg()[0]:.1f} at start")

    print(f"\n4. steps per second, FBNet @ 32, width 0.25, global batch {args.batch_size}, gloo, 1 thread per process:")
    for procs in (1, 2):
        r = _run_worker(luts[32], 32, 0.25, args.batch_size, args.steps, procs=procs, device_type=args.device_type)
        if isinstance(r, str):
            print(f"  {procs} process(es): {r}")
            continue
        print(
            f"  {procs} process(es): weight steps {r['weights']['steps_per_s']:.3f}/s, "
            f"θ steps {r['arch']['steps_per_s']:.3f}/s "
            f"({args.batch_size * r['weights']['steps_per_s']:.1f} images/s in weight steps)"
        )

    print("\n5. peak memory per step (one process):")
    for res, batch, steps in ((32, args.batch_size, args.steps), (224, args.batch_224, 2)):
        for width in (1.0, 0.25):
            for top_k in (None, 2):
                r = _run_worker(luts[res], res, width, batch, steps, top_k=top_k, device_type=args.device_type)
                label = f"  {res}x{res} width {width:<4} batch {batch:2d} {'top-2 ' if top_k else 'full  '}"
                if isinstance(r, str):
                    print(f"{label}: {r}")
                    continue
                print(
                    f"{label}: weight step {r['weights']['peak_mb']:7.0f} MB, θ step {r['arch']['peak_mb']:7.0f} MB "
                    f"({r['measure']}; {1 / r['weights']['steps_per_s']:.2f} s per weight step)"
                )

    print(
        f"\n6. proxy search (digits @ 32, width 0.25, batch {args.batch_size}, {args.epochs} epochs x "
        f"{args.max_steps} steps, seed 0): full mixture vs top-2 per step"
    )
    task = proxy_task("digits", resolution=32)
    table, source = load_lut_file(luts[32])
    found = {}
    for top_k in (None, 2):
        config = SearchConfig(
            epochs=args.epochs,
            warmup_epochs=1,
            batch_size=args.batch_size,
            width_mult=0.25,
            max_steps=args.max_steps,
            samples=1,
            device_type=args.device_type,
            top_k=top_k,
        )
        s = Searcher(table, source, task, config)
        t0 = time.perf_counter()
        result = s.run(tmp / f"search-top{top_k}")
        wall = time.perf_counter() - t0
        peak = max(max(e["weights"], e["arch"]) for e in result["peak_memory_mb"]["per_epoch"])
        found[top_k] = result["argmax"]["arch"].split(",")
        print(
            f"  {'top-2' if top_k else 'full '}: wall {wall:.0f} s, peak {peak:.0f} MB, argmax LUT latency "
            f"{result['argmax']['latency_us'] / 1e3:.4f} ms, E[LAT] {result['expected_latency_us'] / 1e3:.4f} ms, "
            f"θ-split acc {result['history'][-1]['arch_acc']:.3f}\n    {result['argmax']['arch']}"
        )
    same = sum(a == b for a, b in zip(found[None], found[2], strict=True))
    print(f"  same candidate in {same} of {len(found[None])} layers")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (the machine is shared: other jobs slow every figure)")


def main() -> None:
    """Run the benchmark and print what it measured."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lut", type=Path, help="hwlut LUT file (default: synthetic LUT of FBNet @ 32)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--width-mult", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds of step timing")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the proxy search")
    parser.add_argument("--max-steps", type=int, default=4, help="steps per phase and epoch of the proxy search")
    parser.add_argument("--device-type", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--scale", action="store_true", help="run sections 4-6 instead of 1-3")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per phase in sections 4-5")
    parser.add_argument("--batch-224", type=int, default=4, help="batch of the 224x224 memory rows")
    parser.add_argument("--top-k", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    if args.scale:
        with tempfile.TemporaryDirectory(prefix="hwlut-bench-scale-") as tmp:
            _scale(args, Path(tmp))
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="hwlut-bench-search-") as tmp:
        if args.lut is None:
            lut_path = Path(tmp) / "synthetic.json"
            synthetic_table(fbnet_space(args.resolution)).save(lut_path)
        else:
            lut_path = args.lut
        table, source = load_lut_file(lut_path)
        space = table.space
        data = proxy_task("synthetic", resolution=space.resolution, samples=max(400, 8 * args.batch_size))
        config = SearchConfig(
            epochs=args.epochs,
            warmup_epochs=1,
            batch_size=args.batch_size,
            width_mult=args.width_mult,
            max_steps=args.max_steps,
            samples=2,
            device_type=args.device_type,
        )
        searcher = Searcher(table, source, data, config)
        device = searcher.device
        print(
            f"space {space.name} @ {space.resolution}: {len(space.layers)} layers, "
            f"{sum(len(la.candidates) for la in space.layers)} candidate blocks; super net width x{args.width_mult}, "
            f"batch {args.batch_size}; device {device}"
            + (
                f" ({torch.cuda.get_device_name(device)}, autocast {searcher.amp_dtype})"
                if device.type == "cuda"
                else ""
            )
            + f"; torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
        )

        # -- 1. step time with / without the latency term, interleaved ----------------------
        x = data.images[: args.batch_size]
        y = data.labels[: args.batch_size]
        times: dict[tuple[str, bool], list[float]] = {(p, w): [] for p in ("arch", "weights") for w in (True, False)}
        searcher.net.train()
        for phase in ("arch", "weights"):
            searcher.set_phase(phase)
            for with_latency in (True, False):  # warm-up, untimed
                searcher.criterion.use_latency = with_latency
                for _ in range(2):
                    searcher.step(x, y, 5.0, phase)
            for r in range(args.rounds):
                order = (True, False) if r % 2 == 0 else (False, True)
                for with_latency in order:
                    searcher.criterion.use_latency = with_latency
                    _sync(device)
                    t0 = time.perf_counter()
                    searcher.step(x, y, 5.0, phase)
                    _sync(device)
                    times[(phase, with_latency)].append(time.perf_counter() - t0)
        searcher.criterion.use_latency = True
        print(f"\nstep time, median of {args.rounds} interleaved rounds (p10–p90):")
        for phase in ("arch", "weights"):
            meds = {}
            for with_latency in (True, False):
                samples = times[(phase, with_latency)]
                deciles = statistics.quantiles(samples, n=10)
                meds[with_latency] = statistics.median(samples)
                label = "with latency term   " if with_latency else "without latency term"
                print(
                    f"  {phase:7s} step {label}: {meds[with_latency] * 1e3:9.2f} ms "
                    f"({deciles[0] * 1e3:.2f}–{deciles[-1] * 1e3:.2f})"
                )
            ratio = meds[True] / meds[False]
            print(f"  {phase:7s} step ratio with/without: {ratio:.4f} (goal <= 1.01)")

        # -- 2. the latency term alone --------------------------------------------------------
        theta = searcher.net.theta.detach().clone().requires_grad_(True)
        op_times = []
        for _ in range(200):
            _sync(device)
            t0 = time.perf_counter()
            m = torch.softmax(theta.masked_fill(~searcher.net.mask, float("-inf")) / 5.0, dim=-1)
            factor = searcher.criterion.latency_factor(searcher.latency(m))
            factor.backward()
            _sync(device)
            op_times.append(time.perf_counter() - t0)
        op = statistics.median(op_times)
        arch_without = statistics.median(times[("arch", False)])
        print(
            f"\nlatency term alone (LUT tensor {tuple(searcher.latency.table.shape)}, softmax + sum + log^β, "
            f"forward + backward): median {op * 1e6:.1f} µs = {op / arch_without:.2e} of a θ step "
            f"(noise-free ratio estimate {1 + op / arch_without:.5f})"
        )

        # -- 3. a proxy search end to end --------------------------------------------------------
        fresh = Searcher(table, source, data, config)
        t0 = time.perf_counter()
        result = fresh.run(Path(tmp) / "search")
        wall = time.perf_counter() - t0
        w_steps, a_steps = fresh.steps_per_epoch()
        print(
            f"\nproxy search: {args.epochs} epochs x ({w_steps} weight + {a_steps} θ steps), batch {args.batch_size}: "
            f"wall {wall:.1f} s ({wall / args.epochs:.1f} s/epoch, incl. checkpoints, result with FLOPs of "
            f"{1 + config.samples} archs)"
        )
        first, last = result["history"][0], result["history"][-1]
        print(
            f"  expected latency {first['expected_latency_us'] / 1e3:.4f} -> "
            f"{last['expected_latency_us'] / 1e3:.4f} ms; "
            f"argmax {result['argmax']['latency_us'] / 1e3:.4f} ms"
        )


if __name__ == "__main__":
    main()
