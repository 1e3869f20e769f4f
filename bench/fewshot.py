"""Few-shot LUTs under HELP's protocol, side by side with HELP's published numbers.

HELP (Lee et al., NeurIPS 2021, Table 2, FBNet space): meta-train devices
``1080ti_1 … samsung_s7``, meta-validation ``titanx_1, titanx_32, titanx_64,
gold_6240``, meta-test ``fpga, raspi4, eyeriss``; K = 10 architectures
measured on each test device; Spearman's rank correlation on the test
device's remaining architectures. Here:

1. every train device's LUT is fitted from all its networks (``hwlut lut fit``,
   :mod:`searchspace.fit`) — the known devices "in the store";
2. the ridge weight is chosen on the validation devices (random draws, mean
   Spearman over the seeds), never on the test devices;
3. on each test device, K networks are drawn uniformly at random (seeds
   ``0 … --seeds - 1``, as HELP draws them), or chosen actively
   (:func:`searchspace.fewshot.choose`, from the same pool, before any is
   measured; deterministic), the few-shot LUT is fitted to them, and the
   networks not measured are predicted: Spearman and MAPE, mean and worst
   over the seeds; the baseline "most similar device, rescaled"
   (:func:`searchspace.fewshot.most_similar`) on the same draws.

    python bench/fewshot.py                                          # HELP's protocol, K = 10 and 20, 10 seeds
    python bench/fewshot.py --k 10 --seeds 3 --json                  # per test device, as JSON
    python bench/fewshot.py --train pixel3,raspi4 --test samsung_a50 # any split
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from searchspace import fbnet_space
from searchspace.accuracy import figures
from searchspace.fewshot import Basis, choose, fit_fewshot, most_similar
from searchspace.fit import Design, apply_gauge, fit_entries

DEFAULT_DATA = Path("/work/shared/data/help-fbnet/fbnet32_latency_ms.json")
HELP_TRAIN = "1080ti_1,1080ti_32,1080ti_64,silver_4114,silver_4210r,samsung_a50,pixel3,essential_ph_1,samsung_s7"
HELP_VAL = "titanx_1,titanx_32,titanx_64,gold_6240"
HELP_TEST = "fpga,raspi4,eyeriss"
#: HELP's Table 2 (FBNet, K = 10): Spearman on the test devices' remaining architectures.
HELP_PUBLISHED = {"fpga": 0.892, "raspi4": 0.887, "eyeriss": 0.943}
HELP_PUBLISHED_MEAN = {"HELP": 0.910, "MAML": 0.736, "Meta-SGD": 0.806}
RIDGE_GRID = (1e-5, 1e-4, 1e-3, 1e-2)


def load(paths: list[Path]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Architectures and devices (µs) of one or more HELP-format files (same architectures in each)."""
    archs: list[str] | None = None
    devices: dict[str, np.ndarray] = {}
    for path in paths:
        doc = json.loads(path.read_text())
        if archs is not None and doc["archs"] != archs:
            sys.exit(f"{path}: its architectures differ from the first file's")
        archs = doc["archs"]
        scale = {"ms": 1000.0, "us": 1.0}[doc.get("unit", "ms")]
        devices.update({name: np.asarray(v, dtype=float) * scale for name, v in doc["devices"].items()})
    assert archs is not None
    return archs, devices


def evaluate(
    basis: Basis, a: np.ndarray, y: np.ndarray, sums: dict[str, np.ndarray], idx: np.ndarray, ridge: float
) -> dict[str, Any]:
    """Few-shot and baseline figures on the networks not in ``idx``."""
    rest = np.setdiff1d(np.arange(len(y)), idx)
    model = fit_fewshot(basis, "networks", a[idx], y[idx], ridge=ridge)
    predicted = model.network_latency(a[rest])
    ours = figures(predicted.tolist(), y[rest].tolist())
    covered = float(np.mean(np.abs(predicted - y[rest]) <= 2.0 * model.network_std(a[rest])))
    name, rescaled = most_similar(sums, y[idx], idx)
    base = figures(rescaled[rest].tolist(), y[rest].tolist())
    return {
        "spearman": ours.spearman,
        "mape": ours.mape,
        "within_2sd": covered,
        "baseline_spearman": base.spearman,
        "baseline": name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", help="HELP-format JSON (repeatable)")
    parser.add_argument("--train", default=HELP_TRAIN, help="known devices (comma-separated)")
    parser.add_argument("--val", default=HELP_VAL, help="devices the ridge weight is chosen on ('' to keep --ridge)")
    parser.add_argument("--test", default=HELP_TEST, help="new devices (comma-separated)")
    parser.add_argument("--k", type=int, action="append", help="measured networks (repeatable; default 10 and 20)")
    parser.add_argument("--seeds", type=int, default=10, help="random draws per device and K")
    parser.add_argument("--ridge", type=float, default=1e-4, help="ridge weight when --val is empty")
    parser.add_argument("--no-features", action="store_true", help="basis of LUTs only (no entry features)")
    parser.add_argument("--json", action="store_true", help="print per test device figures as JSON")
    args = parser.parse_args()
    ks = args.k or [10, 20]
    started = time.perf_counter()
    archs, devices = load(args.data or [DEFAULT_DATA])
    train, val, test = ([d for d in s.split(",") if d] for s in (args.train, args.val, args.test))
    unknown = [d for d in [*train, *val, *test] if d not in devices]
    if unknown:
        sys.exit(f"unknown devices {unknown}; the data holds {', '.join(devices)}")
    design = Design.of(fbnet_space(32))
    a = design.matrix(archs)
    luts = {d: apply_gauge(design, fit_entries(a, devices[d])) for d in train}
    basis = Basis.of(design, luts, features=not args.no_features)
    sums = {d: a @ x for d, x in luts.items()}
    seeds = list(range(args.seeds))

    def draws(k: int) -> list[np.ndarray]:
        return [np.random.default_rng(seed).choice(len(archs), k, replace=False) for seed in seeds]

    ridge, val_scores = args.ridge, {}
    if val:
        for r in RIDGE_GRID:
            val_scores[r] = float(
                np.mean([evaluate(basis, a, devices[d], sums, i, r)["spearman"] for d in val for i in draws(ks[0])])
            )
        ridge = max(val_scores, key=lambda r: val_scores[r])
    results: dict[str, Any] = {}
    for k in ks:
        active = np.array(choose(basis, "networks", k, pool=a, ridge=ridge))
        for d in test:
            runs = [evaluate(basis, a, devices[d], sums, i, ridge) for i in draws(k)]
            act = evaluate(basis, a, devices[d], sums, active, ridge)
            sp = [r["spearman"] for r in runs]
            results.setdefault(d, {})[f"k{k}"] = {
                "random": {
                    "spearman_mean": float(np.mean(sp)),
                    "spearman_worst": float(np.min(sp)),
                    "mape_mean": float(np.mean([r["mape"] for r in runs])),
                    "within_2sd_mean": float(np.mean([r["within_2sd"] for r in runs])),
                    "per_seed": {s: r["spearman"] for s, r in zip(seeds, runs, strict=True)},
                },
                "active": {"spearman": act["spearman"], "mape": act["mape"], "networks": active.tolist()},
                "baseline_most_similar": {
                    "spearman_mean": float(np.mean([r["baseline_spearman"] for r in runs])),
                    "spearman_worst": float(np.min([r["baseline_spearman"] for r in runs])),
                    "devices": sorted({r["baseline"] for r in runs}),
                },
                "help_published": HELP_PUBLISHED.get(d) if k == 10 else None,
            }
    meta = {
        "train": train,
        "val": val,
        "test": test,
        "seeds": seeds,
        "ridge": ridge,
        "ridge_on_val": val_scores,
        "basis": list(basis.names),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps({"meta": meta, "devices": results}, indent=1))
        return
    print(f"train (known LUTs, fitted from all their networks): {', '.join(train)}")
    print(f"ridge {ridge:g} chosen on {', '.join(val) or '(none)'}: {val_scores}")
    print(f"seeds {seeds[0]}..{seeds[-1]}; Spearman on each test device's networks not measured")
    print(
        f"{'device':<10}{'K':>4}{'HELP':>8}{'random mean':>13}{'worst':>8}{'active':>8}{'MAPE %':>8}{'similar':>9}"
        f"{'in ±2sd':>9}"
    )
    for k in ks:
        for d in test:
            r = results[d][f"k{k}"]
            help_value = f"{r['help_published']:.3f}" if r["help_published"] is not None else "-"
            print(
                f"{d:<10}{k:>4}{help_value:>8}{r['random']['spearman_mean']:>13.3f}{r['random']['spearman_worst']:>8.3f}"
                f"{r['active']['spearman']:>8.3f}{r['random']['mape_mean']:>8.2f}"
                f"{r['baseline_most_similar']['spearman_mean']:>9.3f}{100 * r['random']['within_2sd_mean']:>8.1f}%"
            )
        mean = np.mean([results[d][f"k{k}"]["random"]["spearman_mean"] for d in test])
        worst = min(results[d][f"k{k}"]["random"]["spearman_worst"] for d in test)
        act = np.mean([results[d][f"k{k}"]["active"]["spearman"] for d in test])
        base = np.mean([results[d][f"k{k}"]["baseline_most_similar"]["spearman_mean"] for d in test])
        help_mean = f"{HELP_PUBLISHED_MEAN['HELP']:.3f}" if k == 10 and test == HELP_TEST.split(",") else "-"
        print(f"{'mean':<10}{k:>4}{help_mean:>8}{mean:>13.3f}{worst:>8.3f}{act:>8.3f}{'':>8}{base:>9.3f}")
    print("HELP's published means (K=10): " + ", ".join(f"{n} {v:.3f}" for n, v in HELP_PUBLISHED_MEAN.items()))
    print(f"{meta['seconds']} s")


if __name__ == "__main__":
    main()
