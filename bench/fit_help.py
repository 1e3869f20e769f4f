"""How additive is each device? ``hwlut lut fit`` on every device of a HELP-format file, in-sample and held out.

For each device: a LUT of FBNet-32 fitted to all its networks
(:func:`searchspace.fit.fit_table`), the in-sample figures (how well the best
additive model explains them) and the 5-fold cross-validated ones (networks
the fit did not see). Devices whose latencies are block sums come back
exactly; devices measured end to end say how additive they are.

    python bench/fit_help.py                         # every device of the shared file
    python bench/fit_help.py --device pixel3 --device samsung_a50 --json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from searchspace import fbnet_space
from searchspace.fit import fit_table, read_networks

DEFAULT_DATA = Path("/work/shared/data/help-fbnet/fbnet32_latency_ms.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HELP-format JSON")
    parser.add_argument("--device", action="append", help="device (repeatable; default: all)")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args()
    devices = args.device or list(json.loads(args.data.read_text())["devices"])
    space = fbnet_space(32)
    reports = {}
    if not args.json:
        head = f"{'device':<16}{'in-sample MAPE %':>17}{'Spearman':>10}{'held-out MAPE %':>17}{'Spearman':>10}"
        print(head + f"{'±5 %':>7}")
    for name in devices:
        started = time.perf_counter()
        _table, report = fit_table(space, read_networks(args.data, name))
        report["seconds"] = round(time.perf_counter() - started, 2)
        reports[name] = report
        if not args.json:
            ins, cv = report["in_sample"], report["cross_validated"]
            print(
                f"{name:<16}{ins['mape']:>17.3f}{ins['spearman']:>10.4f}{cv['mape']:>17.3f}{cv['spearman']:>10.4f}"
                f"{100 * cv['within_5']:>6.1f}%"
            )
    if args.json:
        print(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
