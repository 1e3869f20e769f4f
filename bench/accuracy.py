"""Benchmark of LUT accuracy: raw and calibrated predictions of whole networks, LUTs built in each cache mode.

For each runtime (onnxruntime and LiteRT by default), in one run:

1. draws ``--n`` validation architectures of FBNet with ``--seed``,
   stratified over the LUT-sum range in ``--strata`` bins (``--draw
   uniform``: uniformly random), plus the ``--named`` ones (FBNet-A/B/C); the
   strata come from the built LUT with ``--separate``, else from a MAC-based
   proxy LUT (:func:`searcher.synthetic_table`, no jitter): the networks
   must be drawn before the interleaved batch measures their entries;
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
3. prints for each mode: raw LUT sums, sums less ``(n-1)`` per-call
   overheads, and the calibration that seeded cross-validation chose
   (``--calibration auto``), every calibrated figure out of fold, each with
   its 95% lower bound / bootstrap interval; the figures per stratum, the
   named networks' errors, the verdict and the goals below, PASS or FAIL;
4. with ``--separate`` and ``--search-seeds``, runs a short search per seed
   and ``--targets`` latency on the LUT and measures the chosen network end
   to end (:func:`profiler.verify.verify_search`): measured against the
   calibrated prediction and the target.

Goals (issue 14, FBNet-224, 1 thread, each runtime in its default cache mode,
200 stratified networks): calibrated ≥ 99% within ±10% with the 95% lower
bound ≥ 97%, ≥ 90% within ±5%, Spearman ≥ 0.99; raw ≥ 90% within ±10%;
searched architectures within ±5% of the calibrated prediction.

    python bench/accuracy.py --n 200 --modes default                # the goal run (hours on one core)
    python bench/accuracy.py -r 32 --n 20 --needed-only --precision 0.03 --time-cap 0.5   # a smoke run
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
from profiler.protocol import TRIVIAL_ENTRY, ProtocolConfig
from profiler.runtimes import CACHE_MODES, make_runtime
from profiler.validate import lut_medians, measure_interleaved, prefetch_networks, validation_archs
from searchspace import LatencyTable, load_space
from searchspace.accuracy import NetworkRow, accuracy_report
from searchspace.validation import lut_sum_range, stratified_archs


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
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and of the cross-validation folds")
    parser.add_argument("--draw", default="stratified", choices=("stratified", "uniform"))
    parser.add_argument("--strata", type=int, default=5, help="strata of the LUT-sum range")
    parser.add_argument("--named", default="fbnet-a,fbnet-b,fbnet-c", help="named networks to validate too")
    parser.add_argument("--search-seeds", default="", help="with --separate: search seeds to verify (e.g. 0,1,2)")
    parser.add_argument("--targets", default="0.3,0.6", help="target latencies, as fractions of the LUT-sum range")
    parser.add_argument("--search-epochs", type=int, default=2, help="epochs of each verified search")
    parser.add_argument(
        "--modes", default="default", help=f"cache modes of the LUTs ({', '.join(CACHE_MODES)}; default: the runtime's)"
    )
    parser.add_argument("--cold-flush-mb", type=float, default=None, help="cold/l2: MiB read before each run")
    parser.add_argument("--calibration", default="auto", help="auto, none, overhead, scale, offset or linear")
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
    parser.add_argument(
        "--within",
        action="store_true",
        help="with --separate: also time the same networks with their entries in one interleaved batch "
        "(the figure within the build, beside the one apart from it)",
    )
    parser.add_argument(
        "--rescore",
        type=Path,
        default=None,
        help="measure nothing: recompute every report of a --json file of an earlier run with this code",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.rescore is not None:
        _rescore(args)
        return

    space = load_space("fbnet", resolution=args.resolution)
    named = [a for a in args.named.split(",") if a.strip()]
    if args.draw == "stratified" and not args.separate:
        from searcher import synthetic_table  # a MAC-based proxy: the real LUT is measured with the networks

        archs = stratified_archs(space, lut_medians(synthetic_table(space, jitter=0.0)), args.n, args.seed,
                                 strata=args.strata, named=named)  # fmt: skip
    else:
        archs = validation_archs(space, args.n, args.seed, named)  # --separate redraws over the built LUT
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
        rt_modes = [DEFAULT_MODE[name] if m == "default" else m for m in modes]
        if not args.separate:
            prefetch_networks(space, archs, plain.format, cache)
        runs = (
            _separate(args, space, named, entries, name, rt_modes, cfg, cache, lut_dir, flush) if args.separate else {}
        )
        out["runtimes"][name] = {"runtime": plain.settings(), "modes": {}}
        noise: dict[str, dict[str, Any]] = {}
        for mode in rt_modes:
            if not args.separate:
                entry_rt = make_runtime(name, threads=args.threads, cache_mode=mode, cache_flush_bytes=flush)
                t0 = time.perf_counter()
                run = measure_interleaved(space, archs, plain, cfg, entry_runtime=entry_rt, cache=cache)
                proxy = LatencyTable(space=space, entries={k: {"median": v} for k, v in _medians(run).items()})
                try:
                    range_us: tuple[float, float] | None = lut_sum_range(space, lut_medians(proxy))
                except KeyError:  # only the entries the networks use were measured (--needed-only)
                    range_us = None
                runs[mode] = (list(run.rows), run.overhead_us, time.perf_counter() - t0, range_us, None)
                noise[mode] = {
                    "passes": run.batch.passes,
                    "passes_redone": run.batch.passes_redone,
                    "sentinel_max_abs_drift": max((abs(d) for d in run.batch.drifts), default=0.0),
                }
                print(
                    f"  {name} {mode}: {len(run.rows)} networks and their entries in one interleaved batch, "
                    f"{runs[mode][2]:.0f} s, {run.batch.passes_redone} passes redone, sentinel drift up to "
                    f"{max((abs(d) for d in run.batch.drifts), default=0.0):.1%}",
                    flush=True,
                )
            rows, overhead_us, build_s, range_us, table = runs[mode]
            kind = None if args.calibration == "none" else args.calibration
            report = accuracy_report(rows, overhead_us=overhead_us, kind=kind, split_seed=args.seed,
                                     range_us=range_us, strata=args.strata,
                                     meta={"draw": args.draw, "noise": noise.get(mode)})  # fmt: skip
            _print_report(name, mode, report, overhead_us, named, space)
            if args.plot_dir is not None:
                plot_report(report, args.plot_dir / f"accuracy-{args.resolution}-{name}-{mode}.png")
            out["runtimes"][name]["modes"][mode] = {"seconds": build_s, **report.to_dict()}
            if table is not None and args.within:
                within = _within(args, space, rows, name, mode, cfg, cache, flush, range_us)
                out["runtimes"][name]["modes"][mode]["within"] = within
            if table is not None and args.search_seeds:
                serve_calibration(table, report)  # what validate --lut --write-calibration would serve
                out["runtimes"][name]["modes"][mode]["searches"] = _verify_searches(args, table, plain, cfg, cache)
    out["wall_s"] = time.perf_counter() - started
    print(f"whole run: {out['wall_s'] / 60:.1f} min", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    tmp.cleanup()


def _rescore(args: Any) -> None:
    """``--rescore FILE``: every report of an earlier run's JSON recomputed from its rows (what it measured)."""
    doc = json.loads(args.rescore.read_text())
    space = load_space("fbnet", resolution=doc["resolution"])
    named = [a for a in args.named.split(",") if a.strip()]
    print(f"FBNet-{doc['resolution']}: the reports of {args.rescore} recomputed from their rows (seed {doc['seed']})")
    for name, rt in doc["runtimes"].items():
        for mode, rep in rt["modes"].items():
            for label, part in ((mode, rep), (f"{mode} (within the build)", rep.get("within"))):
                if not part:
                    continue
                rows = [NetworkRow(r["arch"], r["measured_us"], r["raw_us"], r["entries"]) for r in part["rows"]]
                strata = part.get("strata") or []
                range_us = (strata[0]["lo_us"], strata[-1]["hi_us"]) if strata else None
                over = part.get("overhead_per_invocation_us")
                report = accuracy_report(rows, overhead_us=over, split_seed=doc["seed"], range_us=range_us,
                                         strata=len(strata) or args.strata, meta=part.get("meta") or {})  # fmt: skip
                _print_report(name, label, report, over, named, space)


def serve_calibration(table: LatencyTable, report: Any) -> None:
    """Put the calibration cross-validation chose into ``table``'s provenance (none chosen: none served)."""
    prov = dict(table.provenance)
    if report.calibration is not None:
        prov["calibration"] = report.calibration.to_dict()
    else:
        prov.pop("calibration", None)
    table.provenance = prov


def _within(
    args: Any,
    space: Any,
    rows: list[NetworkRow],
    name: str,
    mode: str,
    cfg: ProtocolConfig,
    cache: Any,
    flush: Any,
    range_us: tuple[float, float] | None,
) -> dict[str, Any]:
    """``--within``: the networks measured apart, timed again with their entries in one interleaved batch."""
    archs = [r.arch for r in rows]
    plain = make_runtime(name, threads=args.threads)
    entry_rt = make_runtime(name, threads=args.threads, cache_mode=mode, cache_flush_bytes=flush)
    t0 = time.perf_counter()
    run = measure_interleaved(space, archs, plain, cfg, entry_runtime=entry_rt, cache=cache)
    noise = {
        "passes": run.batch.passes,
        "passes_redone": run.batch.passes_redone,
        "sentinel_max_abs_drift": max((abs(d) for d in run.batch.drifts), default=0.0),
    }
    print(f"  {name} {mode}, within the build: {len(run.rows)} networks and their entries in one interleaved batch, "
          f"{time.perf_counter() - t0:.0f} s, {run.batch.passes_redone} passes redone", flush=True)  # fmt: skip
    kind = None if args.calibration == "none" else args.calibration
    meta = {"draw": args.draw, "noise": noise, "within_build": True}
    report = accuracy_report(list(run.rows), overhead_us=run.overhead_us, kind=kind, split_seed=args.seed,
                             range_us=range_us, strata=args.strata, meta=meta)  # fmt: skip
    _print_report(name, f"{mode} (within the build)", report, run.overhead_us, [], space)
    return {"seconds": time.perf_counter() - t0, **report.to_dict()}


def _separate(
    args: Any,
    space: Any,
    named: list[str],
    entries: list[Any],
    name: str,
    modes: list[str],
    cfg: ProtocolConfig,
    cache: ArtifactCache,
    lut_dir: Path,
    flush: int | None,
) -> dict[str, tuple[list[NetworkRow], float | None, float, tuple[float, float] | None, LatencyTable]]:
    """``--separate``: a complete LUT file per mode first, then networks drawn over its range, measured on their own."""
    tables: dict[str, LatencyTable] = {}
    build_s: dict[str, float] = {}
    for mode in modes:
        given = getattr(args, f"lut_{name}", None) if mode == DEFAULT_MODE[name] else None
        path = given or lut_dir / f"lut-fbnet-{args.resolution}-{name}-{args.threads}t-{mode}.json"
        runtime = make_runtime(name, threads=args.threads, cache_mode=mode, cache_flush_bytes=flush)
        t0 = time.perf_counter()
        tables[mode] = profile_space(space, runtime, path, cfg, entries=entries, cache=cache)
        build_s[mode] = time.perf_counter() - t0
        print(f"  {name} {mode}: LUT {path} ({len(tables[mode].entries)} entries, {build_s[mode]:.0f} s)", flush=True)
    first = tables[modes[0]]
    medians = lut_medians(first)
    try:
        range_us: tuple[float, float] | None = lut_sum_range(space, medians)
    except KeyError:
        range_us = None
    if args.draw == "stratified" and range_us is not None:
        archs = stratified_archs(space, medians, args.n, args.seed, strata=args.strata, named=named)
    else:
        archs = validation_archs(space, args.n, args.seed, named)
    prefetch_networks(space, archs, make_runtime(name).format, cache)
    t0 = time.perf_counter()
    measured = measure_networks(space, archs, make_runtime(name, threads=args.threads), cfg, cache=cache)
    print(f"  {name}: {len(measured)} networks measured end to end, apart from the build, "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    out = {}
    for mode, table in tables.items():
        rows = [
            NetworkRow(m.arch, m.measured_us, table.network_latency(m.arch), len(space.entries_of(m.arch)))
            for m in measured
        ]
        out[mode] = (rows, table.overhead_us, build_s[mode], range_us, table)
    return out


def _medians(run: Any) -> dict[str, float]:
    """Entry key -> median of an interleaved batch (the networks and the trivial model left out)."""
    return {
        k: r.summary.median
        for k, r in run.batch.entries.items()
        if r.summary is not None and not k.startswith("net:") and k != TRIVIAL_ENTRY.key
    }


GOALS = (
    ("calibrated within ±10%", lambda r: r.calibrated.within_10 >= 0.99),
    ("its 95% lower bound", lambda r: r.intervals["calibrated"]["within_10"]["lower95"] >= 0.97),
    ("calibrated within ±5%", lambda r: r.calibrated.within_5 >= 0.90),
    ("Spearman (calibrated)", lambda r: (r.calibrated.spearman or 0.0) >= 0.99),
    ("raw within ±10%", lambda r: r.raw.within_10 >= 0.90),
)


def _print_report(name: str, mode: str, report: Any, overhead_us: float | None, named: list[str], space: Any) -> None:
    from hwlut.cli.accuracy_view import accuracy_lines

    mode, _, note = mode.partition(" ")
    note = f" {note}" if note else ""
    print(f"  {name} / {mode}-cache entries{note} (overhead {overhead_us or float('nan'):.1f} µs):")
    for line in accuracy_lines(report.to_dict(), report.meta.get("noise")):
        print("  " + line)
    wanted = {space.decode(a).encode(): a for a in named}
    for i, row in enumerate(report.rows):
        if row.arch in wanted:
            cal = report.calibrated_us(i)
            cal_s = "n/a" if cal is None else f"{100 * (cal / row.measured_us - 1):+.1f}%"
            print(f"    {wanted[row.arch]:<8} measured {row.measured_us / 1000:.3f} ms, raw {row.raw_error_pct:+.1f}%, "
                  f"calibrated (out of fold) {cal_s}")  # fmt: skip
    if report.calibrated is not None and "calibrated" in report.intervals:
        print("    goals: " + ", ".join(f"{g} {'PASS' if ok(report) else 'FAIL'}" for g, ok in GOALS))
    print(flush=True)


def _verify_searches(args: Any, table: LatencyTable, runtime: Any, cfg: ProtocolConfig, cache: Any) -> list[dict]:
    """Search per seed and target on ``table`` (short), measure each chosen network: within ±5% of the prediction?"""
    from profiler.verify import verify_search
    from searcher import SearchConfig, Searcher, proxy_task
    from searcher.lut import LutSource

    lo, hi = lut_sum_range(table.space, lut_medians(table))
    task = proxy_task("digits", resolution=table.space.resolution, samples=256)
    out = []
    for seed in [int(x) for x in args.search_seeds.split(",") if x.strip()]:
        for frac in [float(x) for x in args.targets.split(",") if x.strip()]:
            target_ms = (lo + frac * (hi - lo)) / 1000.0
            config = SearchConfig(epochs=args.search_epochs, warmup_epochs=0, seed=seed, target_ms=target_ms,
                                  beta=4.0, samples=0, width_mult=0.25, device_type="cpu")  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                result = Searcher(table, LutSource("file", "bench", None, None, "bench"), task, config).run(Path(tmp))
            v = verify_search(result, table, runtime, cfg, cache=cache)
            predicted = v["calibrated_us"] if v["calibrated_us"] is not None else v["predicted_us"]
            off = 100 * (v["measured_us"] / predicted - 1)
            print(f"    search seed {seed}, target {target_ms:.3f} ms: measured {v['measured_us'] / 1000:.3f} ms, "
                  f"{off:+.1f}% off the calibrated prediction ({'PASS' if abs(off) <= 5 else 'FAIL'}), "
                  f"{v['target_error_pct']:+.1f}% off the target", flush=True)  # fmt: skip
            out.append({k: v[k] for k in v if k != "measurement"})
    return out


#: Each runtime's default cache mode (hwlut profile's): l2 for LiteRT, warm for onnxruntime.
DEFAULT_MODE = {"ort": "warm", "tflite": "l2"}


if __name__ == "__main__":
    main()
