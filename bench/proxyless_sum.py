"""Check a search result against the Pixel 1 table: sum the YAML means of its ops, keys written by hand.

    python bench/proxyless_sum.py search-out/search_result.json

The keys are spelled here from the ProxylessNAS mobile layer shapes, not by
hwlut's renderer, so the check is independent of hwlut's key grammar.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import yaml

TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-luts" / "proxylessnas_mobile_trim.yaml"
raw = yaml.safe_load((Path(sys.argv[2]) if len(sys.argv) > 2 else TABLE).read_text())
arch = json.loads(Path(sys.argv[1]).read_text())["argmax"]
ops = arch["arch"].split(",")
# ProxylessNAS mobile at 224: (cin, cout, input hw, stride) of the 22 layers
shapes, cin, hw = [(32, 16, 112, 1)], 16, 112
for cout, n, s in ((24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)):
    for i in range(n):
        st = s if i == 0 else 1
        shapes.append((cin, cout, hw, st))
        cin, hw = cout, -(-hw // st)
keys = [
    "Conv-input:224x224x3-output:112x112x32",
    "Conv_1-input:7x7x320-output:7x7x1280",
    "Logits-input:7x7x1280-output:1000",
]
for (ci, co, h, st), op in zip(shapes, ops, strict=True):
    if op == "zero":
        continue
    k, e = (int(p[1:]) for p in op.split("_"))
    o = -(-h // st)
    idskip = int(st == 1 and ci == co)
    keys.append(
        f"expanded_conv-input:{h}x{h}x{ci}-output:{o}x{o}x{co}-expand:{e}-kernel:{k}-stride:{st}-idskip:{idskip}"
    )
direct_ms = math.fsum(raw[k]["mean"] for k in keys)
print(f"{len(keys)} ops; YAML sum {direct_ms:.6f} ms; search result {arch['latency_us'] / 1000:.6f} ms")
