"""Seconds to export every distinct entry of an FBNet space to ONNX and TFLite, cold and warm.

    python bench/export.py                    # FBNet-224: 108 blocks + stem, head, pool, fc
    python bench/export.py --resolution 32 --workers 1
    python bench/export.py --breakdown 4      # also: where one export's time goes

Cold: a fresh, empty cache folder. Warm: the same call again on the filled
cache (every artifact's hash is checked). Goal: cold <= 120 s for both formats
on 2 cores, warm <= 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and its bench/profile.py would
# shadow the standard library's `profile` in the export worker processes.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from profiler.export import ArtifactCache, entry_target, export_many  # noqa: E402
from searchspace import fbnet_space  # noqa: E402


def _run(root: Path, resolution: int, workers: int | None) -> dict[str, float]:
    cache = ArtifactCache(root)
    entries = fbnet_space(resolution).distinct_entries()
    jobs = [(entry_target(e), fmt) for fmt in ("onnx", "tflite") for e in entries]
    started = time.perf_counter()
    export_many(cache, jobs, workers=workers)
    return {"seconds": time.perf_counter() - started, "artifacts": len(jobs)}


def _breakdown_child(n: int, resolution: int) -> None:
    """Per-call time of each export step for ``n`` block entries, serially (run in a fresh process)."""
    started = time.perf_counter()
    import litert_torch  # noqa: F401
    import onnxscript  # noqa: F401
    import torch  # noqa: F401

    import profiler.export as ex
    from searchspace.modules import build_entry, example_input

    print(f"  import torch + onnxscript + litert_torch: {time.perf_counter() - started:.2f} s")
    blocks = fbnet_space(resolution).block_entries()
    entries = blocks[:: max(1, len(blocks) // n)][:n]
    steps: dict[str, list[float]] = {
        "build + randomise": [],
        "onnx (optimize=False)": [],
        "onnx (optimize=True)": [],
        "tflite convert": [],
    }

    def timed(label: str, fn, *args) -> object:
        t = time.perf_counter()
        out = fn(*args)
        steps[label].append(time.perf_counter() - t)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        for entry in entries:
            module = timed("build + randomise", build_entry, entry)
            x = example_input(entry)
            for optimize in (False, True):
                ex.ONNX_OPTIMIZE = optimize
                timed(f"onnx (optimize={optimize})", ex._export_onnx, module, x, Path(tmp) / "m.onnx")
            timed("tflite convert", ex._export_tflite, module, x, Path(tmp) / "m.tflite")
    for label, times in steps.items():
        print(
            f"  {label:24s} median {statistics.median(times):.2f} s per entry "
            f"(n={len(times)}, first call {times[0]:.2f} s)"
        )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--workers", type=int, default=None, help="export processes (default: one per CPU)")
    parser.add_argument("--breakdown", type=int, default=0, help="also time each step for N entries")
    parser.add_argument("--breakdown-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.breakdown_child:
        _breakdown_child(args.breakdown, args.resolution)
        return
    n = len(fbnet_space(args.resolution).distinct_entries())
    print(f"FBNet-{args.resolution}: {n} distinct entries x 2 formats, workers={args.workers or 'one per CPU'}")
    with tempfile.TemporaryDirectory(prefix="hwlut-bench-export-") as tmp:
        cold = _run(Path(tmp), args.resolution, args.workers)
        print(
            f"cold: {cold['seconds']:.1f} s for {cold['artifacts']:.0f} artifacts "
            f"({cold['seconds'] / cold['artifacts']:.2f} s each)"
        )
        warms = [_run(Path(tmp), args.resolution, args.workers)["seconds"] for _ in range(3)]
        print(f"warm: median {statistics.median(warms):.2f} s of 3 runs ({', '.join(f'{w:.2f}' for w in warms)})")
    if args.breakdown:
        print(f"breakdown over {args.breakdown} block entries (serial, a fresh process):", flush=True)
        cmd = [sys.executable, __file__, "--breakdown-child", "--breakdown", str(args.breakdown)]
        subprocess.run([*cmd, "--resolution", str(args.resolution)], check=True)


if __name__ == "__main__":
    main()
