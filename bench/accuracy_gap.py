"""Where does a raw LUT sum's error come from? Entries and whole networks timed in one interleaved batch.

For each runtime and each *variant* of how entries are measured, one
:func:`profiler.protocol.measure_batch` call times every entry that ``--n``
validation networks use, the networks themselves and the trivial model (the
per-call overhead) together, shuffled into the same passes, so a slow spell
or a drift of the machine touches both sides alike and cannot show up as a
LUT error. Per variant it prints the raw LUT sums' figures, the sums less
``(n-1)`` per-call overheads, and the mean error, so the variants' differences
name what each effect contributes:

``run``
    the default: ``session.run`` / ``invoke`` on a bound input, warm caches;
``iobinding`` (onnxruntime)
    input and outputs bound once: no per-call copy in and out;
``extended`` (onnxruntime)
    graph optimisation ``extended`` for entries *and* networks (no NCHWc
    layout: shows what the per-entry layout reorders cost);
``noxnnpack`` (LiteRT)
    the builtin kernels for entries and networks (XNNPACK's pads/transposes);
``l2flush`` / ``llcflush`` / ``flushN``
    entries run after a read of a buffer the size of 2 x L2 (the ``l2``
    cache mode) / of the ``cold`` mode's default / of N MiB
    (``profiler.runtimes.coldcache``), outside the timed region; networks warm.

    python bench/accuracy_gap.py                       # FBNet-224, 12 networks, both runtimes
    python bench/accuracy_gap.py -r 32 --n 4 --variants run,l2flush --time-cap 0.3   # a smoke run
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and bench/profile.py would shadow
# the standard library's ``profile`` module (torch imports it through cProfile).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import json
import statistics
import time
from typing import Any

from profiler.export import ArtifactCache, entry_target, export_many, network_target
from profiler.local import default_sentinel
from profiler.protocol import TRIVIAL_ENTRY, ProtocolConfig
from profiler.runtimes import Runtime, make_runtime, with_cache_mode
from profiler.validate import measure_interleaved, validation_archs
from searchspace import load_space
from searchspace.accuracy import accuracy_report

VARIANTS = {
    "ort": ("run", "iobinding", "extended", "l2flush", "llcflush"),
    "tflite": ("run", "noxnnpack", "l2flush", "llcflush"),
}


def runtime_of(name: str, variant: str, threads: int) -> Runtime:
    """The runtime a variant measures entries *and* networks with (flushes wrap only the entries)."""
    settings: dict[str, Any] = {"threads": threads}
    if variant == "iobinding":
        settings["io_binding"] = True
    elif variant == "extended":
        settings["optimization"] = "extended"
    elif variant == "noxnnpack":
        settings["xnnpack"] = False
    return make_runtime(name, **settings)


def entry_runtime_of(runtime: Runtime, variant: str) -> Runtime:
    """The entries' runtime: the cache modes of :mod:`profiler.runtimes.coldcache` for the flush variants."""
    if variant == "l2flush":
        return with_cache_mode(runtime, "l2")
    if variant == "llcflush":
        return with_cache_mode(runtime, "cold")
    if variant.startswith("flush"):
        return with_cache_mode(runtime, "cold", flush_bytes=int(float(variant[5:]) * (1 << 20)))
    return runtime


def measure_variant(
    space: Any, archs: list[str], name: str, variant: str, threads: int, cfg: ProtocolConfig, cache: ArtifactCache
) -> dict[str, Any]:
    """One interleaved batch of entries, networks and the trivial model; the variant's figures."""
    runtime = runtime_of(name, variant, threads)
    entry_rt = entry_runtime_of(runtime, variant)
    t0 = time.perf_counter()
    run = measure_interleaved(space, archs, runtime, cfg, entry_runtime=entry_rt, cache=cache)
    wall = time.perf_counter() - t0
    report = accuracy_report(list(run.rows), overhead_us=run.overhead_us, kind="linear")
    return {
        "variant": variant,
        "wall_s": wall,
        "passes_redone": run.batch.passes_redone,
        "overhead_us": run.overhead_us,
        "measured_mean_us": statistics.fmean(r.measured_us for r in run.rows),
        "raw_mean_us": statistics.fmean(r.raw_us for r in run.rows),
        "report": report,
    }


def _fig(fig: Any) -> str:
    if fig is None:
        return "n/a"
    sp = "n/a" if fig.spearman is None else f"{fig.spearman:.3f}"
    return f"±10% {fig.within_10:4.0%} ±5% {fig.within_5:4.0%} bias {fig.mean_error_pct:+6.2f}% Spearman {sp}"


def main() -> None:
    """Run every variant of every runtime and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--resolution", type=int, default=224)
    parser.add_argument("--runtimes", default="ort,tflite")
    parser.add_argument("--variants", default=None, help="comma-separated (default: every variant of the runtime)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=12, help="validation networks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", type=float, default=0.01)
    parser.add_argument("--time-cap", type=float, default=1.5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    space = load_space("fbnet", resolution=args.resolution)
    archs = validation_archs(space, args.n, args.seed)
    cfg = ProtocolConfig(target_rel_ci=args.precision, time_cap_s=args.time_cap)
    cache = ArtifactCache()
    entries = list(dict.fromkeys(e for a in archs for e in space.entries_of(a)))
    print(
        f"FBNet-{args.resolution}, {args.threads} thread(s), {len(archs)} networks (seed {args.seed}), "
        f"{len(entries)} entries; entries, networks and the trivial model in one interleaved batch per variant",
        flush=True,
    )
    out: dict[str, Any] = {}
    for name in args.runtimes.split(","):
        fmt = make_runtime(name).format
        t0 = time.perf_counter()
        targets = [entry_target(e) for e in [*entries, TRIVIAL_ENTRY, default_sentinel(space)]]
        export_many(cache, [(t, fmt) for t in [*targets, *(network_target(space, a) for a in archs)]])
        print(f"{name}: artifacts ready in {time.perf_counter() - t0:.0f} s", flush=True)
        variants = args.variants.split(",") if args.variants else VARIANTS[name]
        out[name] = []
        for variant in variants:
            if variant not in VARIANTS[name] and not variant.startswith("flush"):
                print(f"  {variant}: not a variant of {name} ({', '.join(VARIANTS[name])})")
                continue
            res = measure_variant(space, archs, name, variant, args.threads, cfg, cache)
            rep = res["report"]
            print(
                f"  {name} {variant:<10} network {res['measured_mean_us'] / 1000:6.3f} ms  "
                f"LUT sum {res['raw_mean_us'] / 1000:6.3f} ms  overhead {res['overhead_us']:5.1f} µs  "
                f"({res['wall_s']:.0f} s, {res['passes_redone']} passes redone)",
                flush=True,
            )
            print(f"      raw LUT sum:      {_fig(rep.raw)}")
            print(f"      sum-(n-1)*overhd: {_fig(rep.overhead)}")
            print(f"      calibrated (out of fold): {_fig(rep.calibrated)}", flush=True)
            out[name].append({**{k: v for k, v in res.items() if k != "report"}, "report": rep.to_dict()})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
