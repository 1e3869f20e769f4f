"""Benchmark of LUT accuracy: raw and calibrated predictions of whole networks, LUTs built in each cache mode.

For each runtime (onnxruntime and LiteRT by default), in one run:

1. draws ``--n`` validation architectures of FBNet with ``--seed``;
2. for each cache mode of the entries (``warm``: the default protocol;
   ``l2``: the L2 evicted before every timed run; ``cold``: every cache level
   evicted, :mod:`profiler.runtimes.coldcache`) times every entry the networks use and
   the networks themselves (warm, as deployed) in **one interleaved batch**
   (:func:`profiler.validate.measure_interleaved`), as a profiling job with
   validation networks does, so a drift of the machine cannot pass for a LUT
   error; with ``--separate`` it builds a complete LUT file per mode first
   (or continues / reuses the files of ``--lut-dir``, ``--lut-ort``,
   ``--lut-tflite``) and measures the networks afterwards, as
   ``hwlut validate --lut`` does;
3. prints for each mode: raw LUT sums (all networks and the held-out half),
   sums less ``(n-1)`` per-call overheads, and a linear calibration fitted on
   half of the networks and reported on the other half only.

Goals (issue 6, FBNet-224, 1 thread, 50 networks): calibrated ≥ 99% within
±10%, ≥ 90% within ±5%, Spearman ≥ 0.99; raw ≥ 90% within ±10%.

    python bench/accuracy.py                                     # the full run
    python bench/accuracy.py -r 32 --n 8 --needed-only --precision 0.03 --time-cap 0.5   # a smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/profile.py would
# shadow the standard library's ``profile`` module, which torch imports (through cProfile).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import tempfile
import time
from typing import Any

from profiler.export import ArtifactCache
from profiler.local import profile_space
from profiler.network import measure_networks
from profiler.plots import plot_report
from profiler.protocol import ProtocolConfig
from profiler.runtimes import CACHE_MODES, make_runtime
from profiler.validate import measure_interleaved, prefetch_networks, validation_archs
from searchspace import LatencyTable, load_space
from searchspace.accuracy import NetworkRow, accuracy_report


def _line(label: str, fig: Any) -> str:
    if fig is None:
        return f"    {label:<20} n/a"
    sp = "n/a" if fig.spearman is None else f"{fig.spearman:.3f}"
    kt = "n/a" if fig.kendall is None else f"{fig.kendall:.3f}"
    return (
        f"    {label:<20} n={fig.n:<3} ±5% {fig.within_5:6.1%}  ±10% {fig.within_10:6.1%}  MAPE {fig.mape:5.2f}%  "
        f"RMSPE {fig.rmspe:5.2f}%  bias {fig.mean_error_pct:+6.2f}%  max {fig.max_abs_error_pct:5.1f}%  "
        f"Spearman {sp}  Kendall {kt}"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--resolution", type=int, default=224)
    parser.add_argument("--runtimes", default="ort,tflite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=50, help="validation networks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and of the fit/held-out split")
    parser.add_argument("--modes", default="warm,l2", help=f"cache modes of the LUTs ({', '.join(CACHE_MODES)})")
    parser.add_argument("--cold-flush-mb", type=float, default=None, help="cold/l2: MiB read before each run")
    parser.add_argument("--calibration", default="linear", help="linear, scale or offset")
    parser.add_argument("--lut-dir", type=Path, default=None, help="keep (and reuse) the LUTs here")
    parser.add_argument("--lut-ort", type=Path, default=None, help="the warm onnxruntime LUT (reused / continued)")
    parser.add_argument("--lut-tflite", type=Path, default=None, help="the warm LiteRT LUT (reused / continued)")
    parser.add_argument("--needed-only", action="store_true", help="profile only the entries the networks use")
    parser.add_argument("--precision", type=float, default=0.01, help="target CI half-width (entries and networks)")
    parser.add_argument("--time-cap", type=float, default=3.0, help="time cap per entry / network, seconds")
    parser.add_argument("--min-passes", type=int, default=None, help="protocol: passes before the CI rule may stop")
    parser.add_argument("--slice", type=float, default=None, help="protocol: timed seconds per model and pass")
    parser.add_argument("--min-runs", type=int, default=None, help="protocol: timed runs per model and pass, at least")
    parser.add_argument("--plot-dir", type=Path, default=None, help="write one PNG per runtime and mode here")
    parser.add_argument("--json", type=Path, default=None, help="also write every report here")
    parser.add_argument(
        "--separate",
        action="store_true",
        help="build each LUT file first and measure the networks afterwards (not interleaved with the entries)",
    )
    args = parser.parse_args()

    space = load_space("fbnet", resolution=args.resolution)
    archs = validation_archs(space, args.n, args.seed)
    entries = (
        list(dict.fromkeys(e for a in archs for e in space.entries_of(a)))
        if args.needed_only
        else space.distinct_entries()
    )
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    cache = ArtifactCache()
    tuned = {"min_passes": args.min_passes, "slice_s": args.slice, "min_runs_per_pass": args.min_runs}
    cfg = ProtocolConfig(
        target_rel_ci=args.precision, time_cap_s=args.time_cap, **{k: v for k, v in tuned.items() if v is not None}
    )
    flush = int(args.cold_flush_mb * (1 << 20)) if args.cold_flush_mb else None
    tmp = tempfile.TemporaryDirectory(prefix="hwlut-accuracy-")
    lut_dir = args.lut_dir or Path(tmp.name)
    out: dict[str, Any] = {"resolution": args.resolution, "n": len(archs), "seed": args.seed, "runtimes": {}}
    print(
        f"FBNet-{args.resolution}, {args.threads} thread(s), {len(archs)} validation networks (seed {args.seed}), "
        f"{len(entries)} LUT entries, modes {modes}, precision ±{args.precision:.1%}, {cfg.min_passes} passes "
        f"of {cfg.slice_s * 1000:g} ms (at least {cfg.min_runs_per_pass} runs), LUTs in {lut_dir}",
        flush=True,
    )
    for name in args.runtimes.split(","):
        plain = make_runtime(name, threads=args.threads)
        prefetch_networks(space, archs, plain.format, cache)
        runs = _separate(args, space, archs, entries, name, modes, cfg, cache, lut_dir, flush) if args.separate else {}
        out["runtimes"][name] = {"runtime": plain.settings(), "modes": {}}
        for mode in modes:
            if not args.separate:
                entry_rt = make_runtime(name, threads=args.threads, cache_mode=mode, cache_flush_bytes=flush)
                t0 = time.perf_counter()
                run = measure_interleaved(space, archs, plain, cfg, entry_runtime=entry_rt, cache=cache)
                runs[mode] = (list(run.rows), run.overhead_us, time.perf_counter() - t0)
                print(
                    f"  {name} {mode}: {len(run.rows)} networks and their entries in one interleaved batch, "
                    f"{runs[mode][2]:.0f} s, {run.batch.passes_redone} passes redone",
                    flush=True,
                )
            rows, overhead_us, build_s = runs[mode]
            report = accuracy_report(rows, overhead_us=overhead_us, kind=args.calibration, split_seed=args.seed)
            cal = report.calibration
            print(f"  {name} / {mode}-cache entries (overhead {overhead_us or float('nan'):.1f} µs):")
            print(_line("raw LUT sum", report.raw))
            print(_line("raw, held-out", report.raw_held_out))
            print(_line("sum-(n-1)*overhead", report.overhead))
            print(_line("calibrated, held-out", report.calibrated))
            if cal is not None:
                print(
                    f"    calibration: {cal.slope:.4f} x sum {cal.intercept_us:+.1f} µs, fitted on {len(cal.fitted_on)}"
                )
            if args.plot_dir is not None:
                plot_report(report, args.plot_dir / f"accuracy-{args.resolution}-{name}-{mode}.png")
            out["runtimes"][name]["modes"][mode] = {"seconds": build_s, **report.to_dict()}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    tmp.cleanup()


def _separate(
    args: Any,
    space: Any,
    archs: list[str],
    entries: list[Any],
    name: str,
    modes: list[str],
    cfg: ProtocolConfig,
    cache: ArtifactCache,
    lut_dir: Path,
    flush: int | None,
) -> dict[str, tuple[list[NetworkRow], float | None, float]]:
    """``--separate``: a complete LUT file per mode first, then the networks measured on their own."""
    tables: dict[str, LatencyTable] = {}
    build_s: dict[str, float] = {}
    for mode in modes:
        given = getattr(args, f"lut_{name}", None) if mode == "warm" else None
        path = given or lut_dir / f"lut-fbnet-{args.resolution}-{name}-{args.threads}t-{mode}.json"
        runtime = make_runtime(name, threads=args.threads, cache_mode=mode, cache_flush_bytes=flush)
        t0 = time.perf_counter()
        tables[mode] = profile_space(space, runtime, path, cfg, entries=entries, cache=cache)
        build_s[mode] = time.perf_counter() - t0
        print(f"  {name} {mode}: LUT {path} ({len(tables[mode].entries)} entries, {build_s[mode]:.0f} s)", flush=True)
    t0 = time.perf_counter()
    measured = measure_networks(space, archs, make_runtime(name, threads=args.threads), cfg, cache=cache)
    print(f"  {name}: {len(measured)} networks measured end to end in {time.perf_counter() - t0:.0f} s", flush=True)
    out = {}
    for mode, table in tables.items():
        rows = [
            NetworkRow(m.arch, m.measured_us, table.network_latency(m.arch), len(space.entries_of(m.arch)))
            for m in measured
        ]
        out[mode] = (rows, table.overhead_us, build_s[mode])
    return out


if __name__ == "__main__":
    main()
