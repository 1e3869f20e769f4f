"""Block-level few-shot here: a runtime's LUT predicted from the other runtimes' LUTs plus K measured entries.

Every ``--lut`` is a fully measured LUT of the same space (``hwlut profile``).
For each one as the target, the others are the known LUTs; K entries of the
target are taken as measured (chosen actively, :func:`searchspace.fewshot.choose`,
or at random over ``--seeds``), the rest predicted
(:func:`searchspace.fewshot_lut.fewshot_table`). Printed per target and K:
the median and 90th-percentile per-entry error of the predicted entries
against the measured ones, the Spearman correlation of the predicted LUT's
network sums with the measured LUT's over ``--networks`` random networks,
and the share of the full profiling time the K entries took (the LUT's
per-entry ``time_s``).

    python bench/fewshot_blocks.py --lut ort1.json --lut ort2.json --lut ortbasic.json --k 10 --k 20
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from searchspace import LatencyTable
from searchspace.fewshot import choose
from searchspace.fewshot_lut import basis_from_tables, fewshot_table


def run(target: str, tables: dict[str, LatencyTable], k: int, picks: list[int], a: np.ndarray) -> dict[str, Any]:
    """Figures of one prediction of ``target`` from the other tables and the entries ``picks``."""
    space = tables[target].space
    others = {n: t for n, t in tables.items() if n != target}
    basis = basis_from_tables(space, others)
    keys = basis.design.keys
    truth = np.array([tables[target].latency(key) for key in keys])
    table, _model = fewshot_table(basis, "entries", {keys[i]: float(truth[i]) for i in picks})
    pred = np.array([table.entries[key]["median"] for key in keys])
    rest = [i for i in range(len(keys)) if i not in set(picks) and truth[i] > 0]
    err = np.abs(pred[rest] / truth[rest] - 1.0) * 100.0
    times = np.array([float(tables[target].entries[key].get("time_s") or 0.0) for key in keys])
    return {
        "k": k,
        "median_entry_error_pct": float(np.median(err)),
        "p90_entry_error_pct": float(np.percentile(err, 90)),
        "network_spearman_vs_measured_lut": float(spearmanr(a @ pred, a @ truth).statistic),
        "time_share": float(times[picks].sum() / times.sum()) if times.sum() > 0 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lut", type=Path, action="append", required=True, help="a fully measured LUT (repeat)")
    parser.add_argument("--k", type=int, action="append", help="measured entries (repeatable; default 20)")
    parser.add_argument("--seeds", type=int, default=5, help="random draws per target and K")
    parser.add_argument("--networks", type=int, default=1000, help="random networks for the sums' Spearman")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tables = {path.stem: LatencyTable.load(path) for path in args.lut}
    space = next(iter(tables.values())).space
    basis_all = basis_from_tables(space, tables)
    rng = random.Random(0)
    a = basis_all.design.matrix([space.sample(rng).encode() for _ in range(args.networks)])
    out: dict[str, Any] = {}
    for target in tables:
        basis = basis_from_tables(space, {n: t for n, t in tables.items() if n != target})
        for k in args.k or [20]:
            active = run(target, tables, k, choose(basis, "entries", k), a)
            draws = [
                run(
                    target,
                    tables,
                    k,
                    list(np.random.default_rng(s).choice(len(basis.design.keys), k, replace=False)),
                    a,
                )
                for s in range(args.seeds)
            ]
            out.setdefault(target, {})[f"k{k}"] = {"active": active, "random": draws}
            if not args.json:
                med = [d["median_entry_error_pct"] for d in draws]
                sp = [d["network_spearman_vs_measured_lut"] for d in draws]
                print(
                    f"{target:<16} K={k:<3} active: median entry error {active['median_entry_error_pct']:.1f}% "
                    f"(p90 {active['p90_entry_error_pct']:.1f}%), network Spearman vs measured LUT "
                    f"{active['network_spearman_vs_measured_lut']:.4f}, time share {active['time_share'] or 0:.1%}; "
                    f"random (seeds 0..{args.seeds - 1}): median error {np.mean(med):.1f}%, Spearman {np.mean(sp):.4f}"
                )
    if args.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
