"""Benchmark of the profiler: time for a complete LUT, share inside inference, precision, repeatability.

For each runtime: exports every entry first (not timed), then builds the LUT
twice, independently, with the default protocol and prints wall seconds per
build, the share of measuring wall time spent inside inference calls, the
median CI half-width, and the per-entry relative difference between the two
builds (median and 95th percentile). Goals (issue 3, FBNet-224, 1 thread):
<= 120 s per build, >= 80% inside inference, repeatability median <= 1%,
p95 <= 3%.

    python bench/profile.py                         # FBNet-224, ort and tflite, 1 thread
    python bench/profile.py -r 32 --limit 10        # a quick look
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the standard library's ``profile`` module, which torch imports (through cProfile).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import tempfile
import time

import numpy as np

from profiler.export import ArtifactCache, entry_target
from profiler.local import default_sentinel, profile_space
from profiler.protocol import TRIVIAL_ENTRY, ProtocolConfig
from profiler.runtimes import make_runtime
from searchspace import load_space


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--resolution", type=int, default=224)
    parser.add_argument("--runtimes", default="ort,tflite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="only the first N entries (0: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    space = load_space("fbnet", resolution=args.resolution)
    entries = space.distinct_entries()[: args.limit or None]
    cache = ArtifactCache()
    cfg = ProtocolConfig()
    figures = {}
    for name in args.runtimes.split(","):
        runtime = make_runtime(name, threads=args.threads)
        t0 = time.perf_counter()
        for entry in [*entries, TRIVIAL_ENTRY, default_sentinel(space)]:
            cache.get(entry_target(entry), runtime.format)
        export_s = time.perf_counter() - t0
        builds = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(2):
                t0 = time.perf_counter()
                table = profile_space(space, runtime, Path(tmp) / f"lut{i}.json", cfg, entries=entries, cache=cache)
                wall = time.perf_counter() - t0
                rel = [s["ci_rel"] for s in table.entries.values() if s.get("ci_rel") is not None]
                builds.append((wall, table, float(np.median(rel)) if rel else float("nan")))
        a, b = builds[0][1].entries, builds[1][1].entries
        common = sorted(set(a) & set(b))
        diff = np.array([abs(a[k]["median"] / b[k]["median"] - 1) for k in common])
        fig = {
            "entries": len(entries),
            "export_s": round(export_s, 1),
            "wall_s": [round(w, 1) for w, _, _ in builds],
            "inference_share": [t.provenance.get("inference_share") for _, t, _ in builds],
            "median_ci_half_width": [round(r, 5) for _, _, r in builds],
            "stop_reasons": [
                {r: sum(1 for s in t.entries.values() if s.get("stop_reason") == r) for r in ("ci", "time_cap")}
                for _, t, _ in builds
            ],
            "passes_redone": [t.provenance.get("passes_redone") for _, t, _ in builds],
            "repeat_diff_median": float(np.median(diff)) if diff.size else None,
            "repeat_diff_p95": float(np.quantile(diff, 0.95)) if diff.size else None,
        }
        figures[name] = fig
        print(
            f"{name}: {fig['entries']} entries of FBNet-{args.resolution}, {args.threads} thread(s); "
            f"export {fig['export_s']} s; builds {fig['wall_s']} s; inside inference "
            f"{[f'{x:.0%}' if x else '-' for x in fig['inference_share']]}; median CI half-width "
            f"{[f'{x:.2%}' for x in fig['median_ci_half_width']]}; stop {fig['stop_reasons']}; "
            f"redone {fig['passes_redone']}; repeatability median {fig['repeat_diff_median']:.2%}, "
            f"p95 {fig['repeat_diff_p95']:.2%}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
