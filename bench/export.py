"""Seconds to export every distinct entry of an FBNet space to ONNX and TFLite, cold and warm.

    python bench/export.py                    # FBNet-224: 108 blocks + stem, head, pool, fc
    python bench/export.py --resolution 32 --workers 1
    python bench/export.py --breakdown 4      # also: where one export's time goes
    python bench/export.py --quick-set --rounds 2   # quickstart --quick's set: networks grouped vs one per call

Cold: a fresh, empty cache folder. Warm: the same call again on the filled
cache (every artifact's hash is checked). Goal: cold <= 120 s for both formats
on 2 cores, warm <= 5 s.

``--quick-set`` exports what ``hwlut quickstart --quick`` exports (FBNet-32's
entries, the trivial entry, the sentinel and 10 validation networks, both
formats), cold, alternating whole networks grouped
(``NETWORK_GROUP_SIZE`` per exporter call) with one network per call, and
prints for each run when the last artifact of each kind was done.
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

import profiler.export as export  # noqa: E402
from hwlut.cli.quickstart import QUICK_NETWORKS, VALIDATION_SEED, export_jobs  # noqa: E402
from profiler.export import ArtifactCache, entry_target, export_many  # noqa: E402
from searchspace import fbnet_space, validation_archs  # noqa: E402


def _run(root: Path, resolution: int, workers: int | None) -> dict[str, float]:
    cache = ArtifactCache(root)
    entries = fbnet_space(resolution).distinct_entries()
    jobs = [(entry_target(e), fmt) for fmt in ("onnx", "tflite") for e in entries]
    started = time.perf_counter()
    export_many(cache, jobs, workers=workers)
    return {"seconds": time.perf_counter() - started, "artifacts": len(jobs)}


def _quick_set(rounds: int, workers: int | None) -> None:
    """Cold exports of quickstart --quick's set, networks grouped and one per call, interleaved."""
    space = fbnet_space(32)
    jobs = export_jobs(space, space.distinct_entries(), validation_archs(space, QUICK_NETWORKS, VALIDATION_SEED))
    grouped = export.NETWORK_GROUP_SIZE
    print(f"quickstart --quick's set: {len(jobs)} artifacts, workers={workers or 'one per CPU'}, {rounds} rounds")
    totals: dict[str, list[float]] = {}
    for r in range(rounds):
        for size in (grouped, 1) if r % 2 == 0 else (1, grouped):
            name = f"{size} networks per call"
            export.NETWORK_GROUP_SIZE = size  # read by the parent, which cuts the chunks
            done: dict[str, float] = {}
            with tempfile.TemporaryDirectory(prefix="hwlut-bench-export-") as tmp:
                started = time.perf_counter()

                def on_done(artifact: export.Artifact, started: float = started, done: dict = done) -> None:
                    kind = "network" if artifact.target.startswith("net-") else "entry"
                    done[f"{artifact.format} {kind}"] = time.perf_counter() - started

                export_many(ArtifactCache(Path(tmp)), jobs, workers=workers, on_done=on_done)
                seconds = time.perf_counter() - started
            totals.setdefault(name, []).append(seconds)
            last = ", ".join(f"{kind} {t:.0f}" for kind, t in sorted(done.items(), key=lambda kv: kv[1]))
            print(f"  round {r}: {name}: {seconds:.1f} s (last done, s: {last})", flush=True)
    export.NETWORK_GROUP_SIZE = grouped
    for name, values in totals.items():
        print(f"{name}: median {statistics.median(values):.1f} s ({', '.join(f'{v:.1f}' for v in values)})")


def _breakdown_child(n: int, resolution: int) -> None:
    """Where one export's time goes, serially in a fresh process: per-call cost alone vs grouped.

    Exports ``n`` block entries one call each, then the same ``n`` in one
    grouped call (split per entry), for both formats, and prints the seconds
    per entry of each.
    """
    started = time.perf_counter()
    import litert_torch  # noqa: F401
    import onnxscript  # noqa: F401
    import torch  # noqa: F401

    import profiler.export as ex

    print(f"  import torch + onnxscript + litert_torch: {time.perf_counter() - started:.2f} s")
    blocks = fbnet_space(resolution).block_entries()
    targets = [entry_target(e) for e in blocks[:: max(1, len(blocks) // n)][:n]]
    with tempfile.TemporaryDirectory() as tmp:
        ex.ArtifactCache(Path(tmp) / "warm-up").build_group(targets[:1], "onnx")  # first-call costs
        ex.ArtifactCache(Path(tmp) / "warm-up").build_group(targets[:1], "tflite")
        for fmt in ("onnx", "tflite"):
            alone: list[float] = []
            for target in targets:
                t = time.perf_counter()
                ex.ArtifactCache(Path(tmp) / f"alone-{fmt}").build_group([target], fmt)
                alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            ex.ArtifactCache(Path(tmp) / f"group-{fmt}").build_group(targets, fmt)
            grouped = (time.perf_counter() - t) / len(targets)
            print(
                f"  {fmt:6s} one call per entry: median {statistics.median(alone):.2f} s per entry; "
                f"one call for all {len(targets)}: {grouped:.2f} s per entry"
            )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--workers", type=int, default=None, help="export processes (default: one per CPU)")
    parser.add_argument("--breakdown", type=int, default=0, help="also compare lone and grouped exports of N entries")
    parser.add_argument("--breakdown-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick-set", action="store_true", help="only quickstart --quick's set, see above")
    parser.add_argument("--rounds", type=int, default=2, help="--quick-set: rounds of (grouped, one per call)")
    args = parser.parse_args()
    if args.quick_set:
        _quick_set(args.rounds, args.workers)
        return
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
        print(f"breakdown over {args.breakdown} block entries (serial, in a fresh process):", flush=True)
        cmd = [sys.executable, __file__, "--breakdown-child", "--breakdown", str(args.breakdown)]
        subprocess.run([*cmd, "--resolution", str(args.resolution)], check=True)


if __name__ == "__main__":
    main()
