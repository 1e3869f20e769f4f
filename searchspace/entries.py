"""LUT entries and their keys.

An entry is one operator at one shape: the unit a LUT stores one latency for.
Its fields are ``(op, cin, cout, h, w, stride, kernel, expansion, groups)``;
``h`` and ``w`` are the *input* height and width. Ops:

========  ==========================================================  ===========
op        what it is                                                  input
========  ==========================================================  ===========
``tbs``   FBNet TBS block (1x1 g -> dw kxk -> 1x1 g, residual when    NCHW
          stride 1 and cin == cout)
``skip``  identity, or 1x1 conv -> BN -> ReLU with the stride when    NCHW
          the shape changes
``conv``  k x k conv -> BN -> ReLU (the stem and the head)            NCHW
``pool``  global average pool, flattened to ``(N, C)``                NCHW
``fc``    fully connected (after a global pool when ``h*w > 1``)      ``(N, C)``
========  ==========================================================  ===========

Three renderings of a key, each parsing back to the same entry:

canonical
    ``tbs_h112_w112_cin16_cout24_s2_k5_e6_g1`` — every field, always, in this
    order: ``{op}_h{h}_w{w}_cin{cin}_cout{cout}_s{stride}_k{kernel}_e{expansion}_g{groups}``.
HW-NAS-Bench
    ``ConvBlock_H112_W112_Cin16_Cout24_exp6_kernel5_stride2_group1``,
    ``Skip_H.._W.._Cin.._Cout.._stride..``, ``ConvNorm_H.._W.._Cin.._Cout.._kernel.._stride.._group..``,
    ``AvgP_H.._W.._Cin.._Cout.._kernel.._stride..``, ``FC_Cin.._Cout..``.
ProxylessNAS / OFA
    ``expanded_conv-input:112x112x16-output:56x56x24-expand:6-kernel:5-stride:2-idskip:0``
    (``-group:G`` appended when G > 1); ``Conv-…`` (3x3) and ``Conv_1-…`` (1x1)
    for convolutions, ``AvgPool2D-…``, ``Logits-input:HxWxC-output:N``,
    ``skip-input:…-output:…-stride:S``. A field that the input and output
    shapes do not imply is appended as ``-name:value``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "OPS",
    "Entry",
    "EntryKeyError",
    "parse_key",
]

OPS = ("tbs", "skip", "conv", "pool", "fc")


class EntryKeyError(ValueError):
    """A key that follows none of the three renderings, or names an impossible entry."""


@dataclass(frozen=True, order=True)
class Entry:
    """One operator at one input shape; the unit of a latency lookup table."""

    op: str
    cin: int
    cout: int
    h: int
    w: int
    stride: int = 1
    kernel: int = 1
    expansion: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError(f"impossible entry {self.fields()}: " + "; ".join(problems))

    # -- validation -------------------------------------------------------
    def problems(self) -> list[str]:
        """Everything wrong with these fields (empty when the entry is valid)."""
        out: list[str] = []
        if self.op not in OPS:
            return [f"op: unknown op {self.op!r}; known: {', '.join(OPS)}"]
        for name in ("cin", "cout", "h", "w", "stride", "kernel", "expansion", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append(f"{name}: must be a positive integer, got {value!r}")
        if out:
            return out
        if self.op in ("tbs", "conv") and self.kernel % 2 != 1:
            out.append(f"kernel: must be odd, got {self.kernel}")
        if self.op == "tbs":
            mid = self.cin * self.expansion
            for name, channels in (("cin", self.cin), ("cout", self.cout), ("expansion", mid)):
                if channels % self.groups:
                    out.append(f"groups: {self.groups} does not divide {name} channels ({channels})")
        elif self.expansion != 1:
            out.append(f"expansion: only a tbs block has one, got {self.expansion}")
        if self.op in ("skip", "conv", "pool", "fc") and self.groups != 1:
            out.append(f"groups: only a tbs block is grouped, got {self.groups}")
        if self.op == "skip" and self.kernel != 1:
            out.append(f"kernel: a skip is 1x1, got {self.kernel}")
        if self.op == "pool":
            if self.cin != self.cout:
                out.append("cout: a pool keeps its channels (cin == cout)")
            if self.stride != 1 or self.kernel != self.h:
                out.append("kernel: a global pool has kernel == h and stride 1")
        if self.op == "fc" and (self.stride != 1 or self.kernel != 1):
            out.append("stride: a fully connected layer has stride 1 and kernel 1")
        return out

    # -- shapes -------------------------------------------------------------
    @property
    def out_h(self) -> int:
        """Output height (1 for pool and fc)."""
        return 1 if self.op in ("pool", "fc") else -(-self.h // self.stride)

    @property
    def out_w(self) -> int:
        """Output width (1 for pool and fc)."""
        return 1 if self.op in ("pool", "fc") else -(-self.w // self.stride)

    @property
    def has_residual(self) -> bool:
        """Whether a TBS block adds its input to its output."""
        return self.op == "tbs" and self.stride == 1 and self.cin == self.cout

    @property
    def is_identity(self) -> bool:
        """Whether this is a skip that changes nothing (no computation)."""
        return self.op == "skip" and self.stride == 1 and self.cin == self.cout

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The NCHW input shape (``(N, C)`` for an fc entry whose input is 1x1)."""
        if self.op == "fc" and self.h == self.w == 1:
            return (batch, self.cin)
        return (batch, self.cin, self.h, self.w)

    def output_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The output shape: NCHW, or ``(N, C)`` for pool and fc."""
        if self.op in ("pool", "fc"):
            return (batch, self.cout)
        return (batch, self.cout, self.out_h, self.out_w)

    def fields(self) -> dict[str, Any]:
        """The nine fields as a plain dict."""
        return asdict(self)

    # -- keys ---------------------------------------------------------------
    @property
    def key(self) -> str:
        """The canonical key."""
        return (
            f"{self.op}_h{self.h}_w{self.w}_cin{self.cin}_cout{self.cout}"
            f"_s{self.stride}_k{self.kernel}_e{self.expansion}_g{self.groups}"
        )

    def hwnasbench_key(self) -> str:
        """The HW-NAS-Bench rendering (its FBNet lookup tables use these names)."""
        hw = f"H{self.h}_W{self.w}_Cin{self.cin}_Cout{self.cout}"
        if self.op == "tbs":
            return f"ConvBlock_{hw}_exp{self.expansion}_kernel{self.kernel}_stride{self.stride}_group{self.groups}"
        if self.op == "skip":
            return f"Skip_{hw}_stride{self.stride}"
        if self.op == "conv":
            return f"ConvNorm_{hw}_kernel{self.kernel}_stride{self.stride}_group{self.groups}"
        if self.op == "pool":
            return f"AvgP_{hw}_kernel{self.kernel}_stride{self.stride}"
        if self.h != 1 or self.w != 1:
            raise EntryKeyError(f"{self.key}: HW-NAS-Bench has no name for an fc on a {self.h}x{self.w} input")
        return f"FC_Cin{self.cin}_Cout{self.cout}"

    def proxyless_key(self) -> str:
        """The ProxylessNAS / OFA rendering."""
        inp = f"input:{self.h}x{self.w}x{self.cin}"
        if self.op == "fc":
            return f"Logits-{inp}-output:{self.cout}"
        out = f"output:{self.out_h}x{self.out_w}x{self.cout}"
        if self.op == "pool":
            return f"AvgPool2D-{inp}-{out}"
        extra = "" if _implied_stride(self.h, self.out_h) == self.stride else f"-stride:{self.stride}"
        if self.op == "conv":
            if self.kernel == 3:
                return f"Conv-{inp}-{out}{extra}"
            if self.kernel == 1:
                return f"Conv_1-{inp}-{out}{extra}"
            return f"Conv-{inp}-{out}-kernel:{self.kernel}{extra}"
        if self.op == "skip":
            return f"skip-{inp}-{out}-stride:{self.stride}"
        group = f"-group:{self.groups}" if self.groups != 1 else ""
        return (
            f"expanded_conv-{inp}-{out}-expand:{self.expansion}-kernel:{self.kernel}"
            f"-stride:{self.stride}-idskip:{int(self.has_residual)}{group}"
        )

    def render(self, style: str = "canonical") -> str:
        """The key in one of ``canonical``, ``hwnasbench``, ``proxyless``."""
        if style == "canonical":
            return self.key
        if style == "hwnasbench":
            return self.hwnasbench_key()
        if style == "proxyless":
            return self.proxyless_key()
        raise ValueError(f"unknown key style {style!r}; known: canonical, hwnasbench, proxyless")


def _implied_stride(h: int, out_h: int) -> int:
    """The smallest stride that maps ``h`` to ``out_h`` with 'same' padding."""
    for stride in range(1, h + 1):
        if -(-h // stride) == out_h:
            return stride
    raise EntryKeyError(f"no stride maps height {h} to {out_h}")


_CANONICAL_RE = re.compile(
    r"^(?P<op>[a-z]+)_h(?P<h>\d+)_w(?P<w>\d+)_cin(?P<cin>\d+)_cout(?P<cout>\d+)"
    r"_s(?P<stride>\d+)_k(?P<kernel>\d+)_e(?P<expansion>\d+)_g(?P<groups>\d+)$"
)
_HW = r"H(?P<h>\d+)_W(?P<w>\d+)_Cin(?P<cin>\d+)_Cout(?P<cout>\d+)"
_HWNAS_RES = {
    "tbs": re.compile(
        rf"^ConvBlock_{_HW}_exp_?(?P<expansion>\d+)_?kernel(?P<kernel>\d+)"
        r"_stride(?P<stride>\d+)_group(?P<groups>\d+)$"
    ),
    "skip": re.compile(rf"^Skip_{_HW}_stride(?P<stride>\d+)$"),
    "conv": re.compile(rf"^ConvNorm_{_HW}_kernel(?P<kernel>\d+)_stride(?P<stride>\d+)_group(?P<groups>\d+)$"),
    "pool": re.compile(rf"^AvgP_{_HW}_kernel(?P<kernel>\d+)_stride(?P<stride>\d+)$"),
    "fc": re.compile(r"^FC_Cin(?P<cin>\d+)_Cout(?P<cout>\d+)$"),
}
_PROXYLESS_RE = re.compile(
    r"^(?P<name>expanded_conv|Conv_1|Conv|AvgPool2D|Logits|skip)"
    r"-input:(?P<h>\d+)x(?P<w>\d+)x(?P<cin>\d+)"
    r"-output:(?:(?P<oh>\d+)x(?P<ow>\d+)x)?(?P<cout>\d+)"
    r"(?P<extra>(?:-[a-z_]+:\d+)*)$"
)
_PROXYLESS_OPS = {
    "expanded_conv": "tbs",
    "Conv": "conv",
    "Conv_1": "conv",
    "AvgPool2D": "pool",
    "Logits": "fc",
    "skip": "skip",
}
_PROXYLESS_EXTRAS = {"expand": "expansion", "kernel": "kernel", "stride": "stride", "group": "groups"}


def _build(fields: dict[str, Any], key: str) -> Entry:
    try:
        return Entry(**fields)
    except (TypeError, ValueError) as exc:
        raise EntryKeyError(f"key {key!r}: {exc}") from None


def _parse_proxyless(key: str, match: re.Match[str]) -> Entry:
    name = match["name"]
    op = _PROXYLESS_OPS[name]
    h, w, cin, cout = (int(match[g]) for g in ("h", "w", "cin", "cout"))
    fields: dict[str, Any] = {"op": op, "cin": cin, "cout": cout, "h": h, "w": w}
    extras = dict(part.split(":") for part in match["extra"].split("-")[1:])
    idskip = extras.pop("idskip", None)
    # OFA keys carry squeeze-excite and h-swish flags; hwlut's ops have neither.
    for flag in ("se", "hs"):
        if extras.pop(flag, "0") != "0":
            raise EntryKeyError(f"key {key!r}: {flag}:1 (squeeze-excite / h-swish) is not an hwlut op")
    unknown = set(extras) - set(_PROXYLESS_EXTRAS)
    if unknown:
        raise EntryKeyError(f"key {key!r}: unknown field(s) {', '.join(sorted(unknown))}")
    for short, value in extras.items():
        fields[_PROXYLESS_EXTRAS[short]] = int(value)
    if op == "conv":
        fields.setdefault("kernel", 1 if name == "Conv_1" else 3)
    if op == "pool":
        fields.update(kernel=h, stride=1)
    if op in ("tbs", "conv", "skip") and match["oh"] is not None:
        fields.setdefault("stride", _implied_stride(h, int(match["oh"])))
    entry = _build(fields, key)
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


def parse_key(key: str) -> Entry:
    """Parse a key in any of the three renderings into its entry.

    Raises :class:`EntryKeyError` (a ``ValueError``) saying what is wrong.
    """
    if not isinstance(key, str) or not key:
        raise EntryKeyError("key: expected a non-empty string")
    match = _CANONICAL_RE.match(key)
    if match:
        fields: dict[str, Any] = {k: (v if k == "op" else int(v)) for k, v in match.groupdict().items()}
        return _build(fields, key)
    for op, pattern in _HWNAS_RES.items():
        match = pattern.match(key)
        if match:
            fields = {k: int(v) for k, v in match.groupdict().items()}
            fields["op"] = op
            if op == "fc":
                fields.update(h=1, w=1)
            return _build(fields, key)
    match = _PROXYLESS_RE.match(key)
    if match:
        return _parse_proxyless(key, match)
    raise EntryKeyError(
        f"key {key!r} follows none of the renderings: canonical "
        "('tbs_h56_w56_cin24_cout32_s2_k5_e6_g1'), HW-NAS-Bench "
        "('ConvBlock_H56_W56_Cin24_Cout32_exp6_kernel5_stride2_group1') or ProxylessNAS "
        "('expanded_conv-input:56x56x24-output:28x28x32-expand:6-kernel:5-stride:2-idskip:0')"
    )
