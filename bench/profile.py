"""Benchmark of the profiler: time for a complete LUT, share inside inference, precision, repeatability.

For each runtime: exports every entry first (grouped, parallel; not timed),
then builds the LUT twice, independently, with the default protocol, each
build in a fresh process as ``hwlut profile`` runs (``--same-process``: all
in this one). The builds of the runtimes alternate in
ABBA order (ort, tflite, tflite, ort), so a slow spell of the machine
touches both runtimes and both builds. Printed per runtime:

- wall seconds per complete build (the whole ``profile_space`` call: loading
  models, the overhead model, warm-up, passes, file writes), and where they
  went: inside inference calls (its share of the wall time), evicting
  caches before timed runs in a ``cold`` or ``l2`` cache mode (LiteRT's
  default ``l2``: deliberate, not inference), loading, file writes;
- the median (and max) CI half-width relative to the median, stop reasons,
  passes redone;
- repeatability: per-entry relative difference ``|a / b - 1|`` of the
  medians of the two builds, its median and 95th percentile; the builds'
  common shift (a whole build on a slower machine) and the spread around it;
  the same figures for the entries' p10 and min (which were less repeatable
  than the median here).

Goals (issue 3, FBNet-224, 1 thread): <= 120 s per build, >= 80% of wall time
inside inference calls, repeatability median <= 1% and p95 <= 3%.

    python bench/profile.py                          # FBNet-224, ort and tflite, 1 thread (the real run)
    python bench/profile.py -r 32 --limit 6          # a smoke run
    python bench/profile.py --min-passes 3 --slice 0.05 --min-runs 3 --keep DIR   # the old protocol; keep the LUTs
    python bench/profile.py --every 7                # every 7th entry of FBNet-224: ~1/7 of the time
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the standard library's ``profile`` module, which torch imports (through cProfile).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import contextlib
import json
import multiprocessing
import platform
import tempfile
import time
from typing import Any

import numpy as np

from profiler.export import ArtifactCache, entry_target, export_many
from profiler.local import default_sentinel, profile_space
from profiler.protocol import TRIVIAL_ENTRY, ProtocolConfig
from profiler.provenance import collect_cpu_model
from profiler.runtimes import default_cache_mode, make_runtime
from searchspace import LatencyTable, load_space

GOALS = {"wall_s": 120.0, "inference_share": 0.80, "repeat_median": 0.01, "repeat_p95": 0.03}


def _build_figures(table: LatencyTable, wall: float) -> dict[str, Any]:
    session = table.provenance["sessions"][-1]
    stats = table.entries.values()
    rel = [s["ci_rel"] for s in stats if s.get("ci_rel") is not None]
    return {
        "wall_s": round(wall, 2),
        "inference_s": session.get("inference_s"),
        "inference_share": session["inference_s"] / wall if wall else None,
        "eviction_s": session.get("cache_eviction_s"),
        "eviction_share": session["cache_eviction_s"] / wall if wall and session.get("cache_eviction_s") else None,
        "load_s": session.get("load_s"),
        "save_s": session.get("save_s"),
        "saves": session.get("saves"),
        "median_ci_half_width": float(np.median(rel)) if rel else None,
        "max_ci_half_width": float(np.max(rel)) if rel else None,
        "stop_reasons": {r: sum(1 for s in stats if s.get("stop_reason") == r) for r in ("ci", "time_cap")},
        "passes": table.provenance.get("passes"),
        "passes_redone": table.provenance.get("passes_redone"),
        "max_sentinel_drift": table.provenance.get("sentinel", {}).get("max_abs_drift"),
        "errors": len(table.errors),
    }


def _repeatability(a: LatencyTable, b: LatencyTable, stat: str = "median") -> dict[str, Any]:
    """Per-entry ``|a / b - 1|`` of the medians (or ``stat``); also the builds' common shift and the spread around it.

    ``shift`` is the median of ``a / b - 1``: a whole build measured on a
    slower (or faster) machine moves every entry alike. ``*_unshifted`` are the
    same figures after dividing that common factor out: what is left is
    per-entry disagreement.
    """
    common = sorted(set(a.entries) & set(b.entries))
    ratio = np.array([a.entries[k][stat] / b.entries[k][stat] for k in common])
    if not ratio.size:
        return {"entries": 0, "median": None, "p95": None, "max": None, "shift": None}
    diff = np.abs(ratio - 1)
    shift = float(np.median(ratio))
    rest = np.abs(ratio / shift - 1)
    worst = [int(i) for i in np.argsort(-diff)[:5]]
    return {
        "entries": len(common),
        "median": float(np.median(diff)),
        "p95": float(np.quantile(diff, 0.95)),
        "max": float(diff.max()),
        "shift": shift - 1,
        "median_unshifted": float(np.median(rest)),
        "p95_unshifted": float(np.quantile(rest, 0.95)),
        "worst": [
            {"key": common[i], "a_us": a.entries[common[i]]["median"], "b_us": b.entries[common[i]]["median"]}
            for i in worst
        ],
    }


def _one_build(
    resolution: int, name: str, threads: int, cache_mode: str, cfg: ProtocolConfig, keys: list[str], out: str
) -> float:
    """One complete build of ``keys`` into ``out`` (run in a fresh process by default); its wall seconds."""
    space = load_space("fbnet", resolution=resolution)
    wanted = set(keys)
    entries = [e for e in space.distinct_entries() if e.key in wanted]
    runtime = make_runtime(name, threads=threads, cache_mode=cache_mode)
    t0 = time.perf_counter()
    profile_space(space, runtime, Path(out), cfg, entries=entries, cache=ArtifactCache())
    return time.perf_counter() - t0


def _verdict(value: float | None, goal: float, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    return "met" if (value >= goal if at_least else value <= goal) else "NOT met"


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--resolution", type=int, default=224)
    parser.add_argument("--runtimes", default="ort,tflite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="only the first N entries (0: all)")
    parser.add_argument("--every", type=int, default=1, help="only every Nth entry (a spread-out sample)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--min-passes", type=int, default=None, help="protocol: passes before the CI rule may stop")
    parser.add_argument("--slice", type=float, default=None, help="protocol: timed seconds per entry and pass")
    parser.add_argument("--cache-mode", default=None, help="warm, l2 or cold (default: each runtime's default)")
    parser.add_argument("--min-runs", type=int, default=None, help="protocol: timed runs per entry and pass, at least")
    parser.add_argument("--sentinel-slice", type=float, default=None, help="protocol: sentinel seconds at each end")
    parser.add_argument("--keep", type=Path, default=None, help="keep the LUT files here")
    parser.add_argument("--normalize", action="store_true", help="sentinel-relative timing (ProtocolConfig.normalize)")
    parser.add_argument(
        "--same-process", action="store_true", help="all builds in this process (default: a fresh one per build)"
    )
    args = parser.parse_args()

    space = load_space("fbnet", resolution=args.resolution)
    entries = space.distinct_entries()[:: args.every][: args.limit or None]
    complete = len(entries) == len(space.distinct_entries())
    names = args.runtimes.split(",")
    modes = {name: args.cache_mode or default_cache_mode(name) for name in names}
    runtimes = {name: make_runtime(name, threads=args.threads, cache_mode=modes[name]) for name in names}
    cache = ArtifactCache()
    tuned = {
        "min_passes": args.min_passes,
        "slice_s": args.slice,
        "min_runs_per_pass": args.min_runs,
        "sentinel_slice_s": args.sentinel_slice,
    }
    tuned = {k: v for k, v in tuned.items() if v is not None}
    cfg = ProtocolConfig(normalize=args.normalize, **tuned)

    t0 = time.perf_counter()
    wanted = [TRIVIAL_ENTRY, default_sentinel(space), *entries]
    formats = dict.fromkeys(rt.format for rt in runtimes.values())
    export_many(cache, [(entry_target(e), fmt) for fmt in formats for e in wanted])
    export_s = time.perf_counter() - t0
    print(
        f"FBNet-{args.resolution}: {len(entries)} of {len(space.distinct_entries())} entries, "
        f"{args.threads} thread(s), {collect_cpu_model()}, Python {platform.python_version()}, "
        f"sentinel-relative timing {'on' if args.normalize else 'off'}, cache modes "
        f"{ {n: rt.settings().get('cache_mode', 'warm') for n, rt in runtimes.items()} }; "
        f"export (not timed below) {export_s:.1f} s",
        flush=True,
    )

    order = [*names, *reversed(names)]  # ABBA: a slow spell touches both runtimes and both builds
    tables: dict[str, list[LatencyTable]] = {name: [] for name in names}
    builds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory() as tmp:
        for step, name in enumerate(order):
            build = len(tables[name])
            out = Path(tmp) / f"{name}-{build}.json"
            job = (args.resolution, name, args.threads, modes[name], cfg, [e.key for e in entries], str(out))
            if args.same_process:
                wall = _one_build(*job)
            else:  # one build per process, as `hwlut profile` runs
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    wall = pool.apply(_one_build, job)
            table = LatencyTable.load(out)
            tables[name].append(table)
            builds[name].append(_build_figures(table, wall))
            fig = builds[name][-1]
            print(
                f"  [{step + 1}/{len(order)}] {name} build {build + 1}: {wall:.1f} s, "
                f"{fig['inference_share']:.0%} inside inference"
                + (f", {fig['eviction_share']:.0%} evicting caches before timed runs" if fig["eviction_share"] else "")
                + f" (load {fig['load_s']:.1f} s, "
                f"{fig['saves']} file writes {fig['save_s']:.2f} s), median CI ±{fig['median_ci_half_width']:.2%}, "
                f"stop {fig['stop_reasons']}, {fig['passes']} passes, {fig['passes_redone']} redone",
                flush=True,
            )

    figures: dict[str, Any] = {
        "resolution": args.resolution,
        "entries": len(entries),
        "complete": complete,
        "threads": args.threads,
        "export_s": round(export_s, 1),
        "runtimes": {},
    }
    rows = []
    for name in names:
        a, b = tables[name]
        rep = _repeatability(a, b)
        walls = [f["wall_s"] for f in builds[name]]
        shares = [f["inference_share"] for f in builds[name]]
        cis = ", ".join(f"±{f['median_ci_half_width']:.2%}" for f in builds[name])
        version = a.provenance["runtime"].get("runtime_version")
        figures["runtimes"][name] = {"version": version, "builds": builds[name], "repeatability": rep}
        scale = len(space.distinct_entries()) / len(entries)
        goal_note = "" if complete else f" (scaled to the whole space: {max(walls) * scale:.0f} s)"
        print(
            f"{name} {version}: wall {walls} s{goal_note} [{_verdict(max(walls) * scale, GOALS['wall_s'])}]; "
            f"inside inference {[f'{s:.0%}' for s in shares]} "
            f"[{_verdict(min(shares), GOALS['inference_share'], at_least=True)}]; "
            f"median CI half-width {cis}; "
            f"repeatability median {rep['median']:.2%} [{_verdict(rep['median'], GOALS['repeat_median'])}], "
            f"p95 {rep['p95']:.2%} [{_verdict(rep['p95'], GOALS['repeat_p95'])}]; "
            f"build 1 / build 2 common shift {rep['shift']:+.2%}, around it median "
            f"{rep['median_unshifted']:.2%}, p95 {rep['p95_unshifted']:.2%}; largest: "
            + ", ".join(f"{w['key']} {w['a_us']:.1f}/{w['b_us']:.1f} µs" for w in rep["worst"][:3])
        )
        others = {stat: _repeatability(a, b, stat) for stat in ("p10", "min")}
        figures["runtimes"][name]["repeatability_of"] = others
        print(
            f"  {name}, repeatability of other statistics (median / p95 / shift): "
            + "; ".join(f"{s} {r['median']:.2%} / {r['p95']:.2%} / {r['shift']:+.2%}" for s, r in others.items())
        )
        rows.append(
            f"| {name} {version} | {', '.join(f'{w:.1f} s' for w in walls)} | "
            f"{', '.join(f'{s:.0%}' for s in shares)} | "
            f"{cis} | "
            f"{', '.join(str(f['passes_redone']) for f in builds[name])} | "
            f"{rep['median']:.2%} / {rep['p95']:.2%} |"
        )
    print("\n| runtime | wall per build | inside inference | median CI half-width | redone | repeat median / p95 |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
