"""The foreign renderings of an entry's key: HW-NAS-Bench and ProxylessNAS / OFA.

Both render every op of :mod:`searchspace.entries` and parse back to the same
entry; this module is their only grammar.

HW-NAS-Bench (its FBNet tables name ``ConvBlock``, ``Skip``, ``ConvNorm``,
``AvgP`` and ``FC``; the other names follow their pattern)::

    tbs      ConvBlock_H{h}_W{w}_Cin{cin}_Cout{cout}_exp{E}_kernel{K}_stride{S}_group{G}
    mb       MBConv_H.._W.._Cin.._Cout.._exp{E}_kernel{K}_stride{S}
    mb3*     MBConv3_H.._W.._Cin.._Cout.._mid{M}_kernel{K}_stride{S}_se{0|1}_hs{0|1}
    zero     Zero_H.._W.._Cin.._Cout..
    skip     Skip_H.._W.._Cin.._Cout.._stride{S}
    conv     ConvNorm_H.._W.._Cin.._Cout.._kernel{K}_stride{S}_group{G}
    pool     AvgP_H.._W.._Cin.._Cout.._kernel{K}_stride{S}
    mix      Mix_Cin{cin}_Cout{cout}
    fc       FC_Cin{cin}_Cout{cout} (1x1 input), FC_H{h}_W{w}_Cin.._Cout.. (pools first)

ProxylessNAS / OFA (the keys of ``mobile_trim.yaml`` and OFA's
``224_lookup_table.yaml``; ``I`` = input ``HxWxC``, ``O`` = output ``HxWxC``)::

    mb       expanded_conv-input:I-output:O-expand:E-kernel:K-stride:S-idskip:0|1
    mb3*     expanded_conv-input:I-output:O-expand:M-kernel:K-stride:S-idskip:0|1-se:0|1-hs:0|1
             (OFA writes the middle channel count M as ``expand``)
    tbs      tbs-input:I-output:O-expand:E-kernel:K-stride:S-idskip:0|1[-group:G]
    conv     Conv-input:I-output:O (3x3), Conv_1-input:I-output:O (1x1),
             Conv-input:I-output:O-kernel:K otherwise; ``-stride:S`` when the
             shapes do not imply it
    pool     AvgPool2D-input:I-output:1x1xC
    mix      Conv_2-input:1x1xC-output:1x1xN (OFA's feature-mix conv)
    fc       Logits-input:I-output:N
    skip     skip-input:I-output:O-stride:S
    zero     zero-input:I-output:O

``idskip`` must agree with the shape (residual iff stride 1 and cin == cout).
"""

from __future__ import annotations

import re
from typing import Any

from .entries import MB3_OPS, Entry, EntryKeyError, build_entry_fields

__all__ = ["HWNASBENCH_PREFIXES", "PROXYLESS_NAMES", "hwnasbench_key", "parse_foreign_key", "proxyless_key"]


def hwnasbench_key(entry: Entry) -> str:
    """The HW-NAS-Bench-style rendering of ``entry``."""
    e = entry
    hw = f"H{e.h}_W{e.w}_Cin{e.cin}_Cout{e.cout}"
    if e.op == "tbs":
        return f"ConvBlock_{hw}_exp{e.expansion}_kernel{e.kernel}_stride{e.stride}_group{e.groups}"
    if e.op == "mb":
        return f"MBConv_{hw}_exp{e.expansion}_kernel{e.kernel}_stride{e.stride}"
    if e.op in MB3_OPS:
        se, hs = _mb3_flags(e.op)
        return f"MBConv3_{hw}_mid{e.expansion}_kernel{e.kernel}_stride{e.stride}_se{se}_hs{hs}"
    if e.op == "zero":
        return f"Zero_{hw}"
    if e.op == "skip":
        return f"Skip_{hw}_stride{e.stride}"
    if e.op == "conv":
        return f"ConvNorm_{hw}_kernel{e.kernel}_stride{e.stride}_group{e.groups}"
    if e.op == "pool":
        return f"AvgP_{hw}_kernel{e.kernel}_stride{e.stride}"
    if e.op == "mix":
        return f"Mix_Cin{e.cin}_Cout{e.cout}"
    if (e.h, e.w) != (1, 1):
        return f"FC_{hw}"
    return f"FC_Cin{e.cin}_Cout{e.cout}"


def _mb3_flags(op: str) -> tuple[int, int]:
    return int("se" in op), int(op.endswith("hs"))


def _mb3_op(se: int, hs: int) -> str:
    return "mb3" + ("se" if se else "") + ("hs" if hs else "")


def _implied_stride(h: int, out_h: int) -> int:
    """The smallest stride that maps ``h`` to ``out_h`` with 'same' padding."""
    for stride in range(1, h + 1):
        if -(-h // stride) == out_h:
            return stride
    raise EntryKeyError(f"no stride maps height {h} to {out_h}")


def proxyless_key(entry: Entry) -> str:
    """The ProxylessNAS / OFA rendering of ``entry``."""
    e = entry
    inp = f"input:{e.h}x{e.w}x{e.cin}"
    if e.op == "fc":
        return f"Logits-{inp}-output:{e.cout}"
    out = f"output:{e.out_h}x{e.out_w}x{e.cout}"
    if e.op == "pool":
        return f"AvgPool2D-{inp}-{out}"
    if e.op == "mix":
        return f"Conv_2-{inp}-{out}"
    if e.op == "zero":
        return f"zero-{inp}-{out}"
    if e.op == "skip":
        return f"skip-{inp}-{out}-stride:{e.stride}"
    extra = "" if _implied_stride(e.h, e.out_h) == e.stride else f"-stride:{e.stride}"
    if e.op == "conv":
        if e.kernel == 3:
            return f"Conv-{inp}-{out}{extra}"
        if e.kernel == 1:
            return f"Conv_1-{inp}-{out}{extra}"
        return f"Conv-{inp}-{out}-kernel:{e.kernel}{extra}"
    body = f"{inp}-{out}-expand:{e.expansion}-kernel:{e.kernel}-stride:{e.stride}-idskip:{int(e.has_residual)}"
    if e.op == "mb":
        return f"expanded_conv-{body}"
    if e.op in MB3_OPS:
        se, hs = _mb3_flags(e.op)
        return f"expanded_conv-{body}-se:{se}-hs:{hs}"
    group = f"-group:{e.groups}" if e.groups != 1 else ""
    return f"tbs-{body}{group}"


# -- parsing ----------------------------------------------------------------------
_HW = r"H(?P<h>\d+)_W(?P<w>\d+)_Cin(?P<cin>\d+)_Cout(?P<cout>\d+)"
_HWNAS_RES: dict[str, re.Pattern[str]] = {
    "tbs": re.compile(
        rf"^ConvBlock_{_HW}_exp_?(?P<expansion>\d+)_?kernel(?P<kernel>\d+)"
        r"_stride(?P<stride>\d+)_group(?P<groups>\d+)$"
    ),
    "mb": re.compile(rf"^MBConv_{_HW}_exp(?P<expansion>\d+)_kernel(?P<kernel>\d+)_stride(?P<stride>\d+)$"),
    "mb3": re.compile(
        rf"^MBConv3_{_HW}_mid(?P<expansion>\d+)_kernel(?P<kernel>\d+)_stride(?P<stride>\d+)"
        r"_se(?P<se>[01])_hs(?P<hs>[01])$"
    ),
    "zero": re.compile(rf"^Zero_{_HW}$"),
    "skip": re.compile(rf"^Skip_{_HW}_stride(?P<stride>\d+)$"),
    "conv": re.compile(rf"^ConvNorm_{_HW}_kernel(?P<kernel>\d+)_stride(?P<stride>\d+)_group(?P<groups>\d+)$"),
    "pool": re.compile(rf"^AvgP_{_HW}_kernel(?P<kernel>\d+)_stride(?P<stride>\d+)$"),
    "mix": re.compile(r"^Mix_Cin(?P<cin>\d+)_Cout(?P<cout>\d+)$"),
    "fc": re.compile(r"^FC_(?:H(?P<h>\d+)_W(?P<w>\d+)_)?Cin(?P<cin>\d+)_Cout(?P<cout>\d+)$"),
}
#: The first word of every HW-NAS-Bench-style key (a file of only these is in that format).
HWNASBENCH_PREFIXES = ("ConvBlock_", "MBConv_", "MBConv3_", "Zero_", "Skip_", "ConvNorm_", "AvgP_", "Mix_", "FC_")

_PROXYLESS_RE = re.compile(
    r"^(?P<name>expanded_conv|tbs|Conv_2|Conv_1|Conv|AvgPool2D|Logits|skip|zero)"
    r"-input:(?P<h>\d+)x(?P<w>\d+)x(?P<cin>\d+)"
    r"-output:(?:(?P<oh>\d+)x(?P<ow>\d+)x)?(?P<cout>\d+)"
    r"(?P<extra>(?:-[a-z_]+:\d+)*)$"
)
_PROXYLESS_OPS = {
    "expanded_conv": "mb",
    "tbs": "tbs",
    "Conv": "conv",
    "Conv_1": "conv",
    "Conv_2": "mix",
    "AvgPool2D": "pool",
    "Logits": "fc",
    "skip": "skip",
    "zero": "zero",
}
#: The op names of the ProxylessNAS / OFA rendering (the first word of such a key, before ``-input:``).
PROXYLESS_NAMES = tuple(_PROXYLESS_OPS)
_PROXYLESS_EXTRAS = {"expand": "expansion", "kernel": "kernel", "stride": "stride", "group": "groups"}


def _parse_hwnasbench(key: str) -> Entry | None:
    for op, pattern in _HWNAS_RES.items():
        match = pattern.match(key)
        if match is None:
            continue
        fields: dict[str, Any] = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        if op == "mb3":
            op = _mb3_op(fields.pop("se"), fields.pop("hs"))
        fields["op"] = op
        if op in ("fc", "mix"):
            fields.setdefault("h", 1)
            fields.setdefault("w", 1)
        if op == "zero":
            fields["stride"] = 1
        return build_entry_fields(fields, key)
    return None


def _parse_proxyless(key: str, match: re.Match[str]) -> Entry:
    name = match["name"]
    op = _PROXYLESS_OPS[name]
    h, w, cin, cout = (int(match[g]) for g in ("h", "w", "cin", "cout"))
    fields: dict[str, Any] = {"op": op, "cin": cin, "cout": cout, "h": h, "w": w}
    parts = [part.split(":") for part in match["extra"].split("-")[1:]]
    extras = dict(parts)
    if len(extras) != len(parts):
        raise EntryKeyError(f"key {key!r}: a field is given twice")
    idskip = extras.pop("idskip", None)
    flags = {flag: extras.pop(flag) for flag in ("se", "hs") if flag in extras}
    if flags:
        if name != "expanded_conv" or len(flags) != 2 or any(v not in ("0", "1") for v in flags.values()):
            raise EntryKeyError(f"key {key!r}: se and hs flags (0 or 1, both) belong to an OFA expanded_conv")
        fields["op"] = op = _mb3_op(int(flags["se"]), int(flags["hs"]))
    unknown = set(extras) - set(_PROXYLESS_EXTRAS)
    if unknown:
        raise EntryKeyError(f"key {key!r}: unknown field(s) {', '.join(sorted(unknown))}")
    for short, value in extras.items():
        fields[_PROXYLESS_EXTRAS[short]] = int(value)
    if op == "conv":
        fields.setdefault("kernel", 1 if name == "Conv_1" else 3)
    if op == "pool":
        fields.update(kernel=h, stride=1)
    if op not in ("fc", "pool", "mix") and match["oh"] is not None:
        fields.setdefault("stride", _implied_stride(h, int(match["oh"])))
    entry = build_entry_fields(fields, key)
    if match["oh"] is not None and op != "fc":
        if (entry.out_h, entry.out_w) != (int(match["oh"]), int(match["ow"])):
            raise EntryKeyError(
                f"key {key!r}: output {match['oh']}x{match['ow']} does not follow from "
                f"input {h}x{w} with stride {entry.stride}"
            )
    if idskip is not None and int(idskip) != int(entry.has_residual):
        raise EntryKeyError(
            f"key {key!r}: idskip:{idskip} contradicts the shape (residual is "
            f"{'on' if entry.has_residual else 'off'} for stride {entry.stride}, {cin}->{cout})"
        )
    return entry


def parse_foreign_key(key: str) -> Entry:
    """Parse an HW-NAS-Bench or ProxylessNAS / OFA key; :class:`EntryKeyError` says what is wrong."""
    entry = _parse_hwnasbench(key)
    if entry is not None:
        return entry
    match = _PROXYLESS_RE.match(key)
    if match:
        return _parse_proxyless(key, match)
    raise EntryKeyError(
        f"key {key!r} follows none of the renderings: canonical "
        "('tbs_h56_w56_cin24_cout32_s2_k5_e6_g1'), HW-NAS-Bench "
        "('ConvBlock_H56_W56_Cin24_Cout32_exp6_kernel5_stride2_group1') or ProxylessNAS "
        "('expanded_conv-input:56x56x24-output:28x28x32-expand:6-kernel:5-stride:2-idskip:0')"
    )
