"""Benchmark of the searcher: what the latency term costs per step, and a short proxy search.

1. Time per training step with and without the latency term
   (``CE * alpha * log(LAT) ** beta`` vs ``CE * alpha``), for the θ step and
   the weight step. The variants are interleaved (with, without, without,
   with, ...) so that a slow spell of a shared machine touches both alike;
   medians and their ratio are printed (goal: ratio <= 1.01).
2. The latency term alone (forward + backward of the LUT-tensor op).
3. Wall time of a proxy search of a few epochs, end to end (checkpoints and
   result included).

Usage::

    python bench/search.py                       # FBNet 32x32, width 0.25, CPU
    python bench/search.py --device-type cuda    # on a GPU (bf16/fp16 autocast)
    python bench/search.py --lut my.json --rounds 40 --epochs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# bench/ holds a profile.py that would shadow the standard library's `profile` (torch imports cProfile)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from searcher import SearchConfig, Searcher, load_lut_file, proxy_task, synthetic_table  # noqa: E402
from searchspace import fbnet_space  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    args = parser.parse_args()
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
