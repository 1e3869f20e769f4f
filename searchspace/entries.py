"""LUT entries and their canonical keys.

An entry is one operator at one shape: the unit a LUT stores one latency for.
Its fields are ``(op, cin, cout, h, w, stride, kernel, expansion, groups)``;
``h`` and ``w`` are the *input* height and width. Ops:

===========  =======================================================  ===========
op           what it is                                               input
===========  =======================================================  ===========
``tbs``      FBNet TBS block (1x1 g -> dw kxk -> 1x1 g, residual      NCHW
             when stride 1 and cin == cout)
``mb``       ProxylessNAS / MobileNetV2 inverted residual: 1x1        NCHW
             expand (none at expansion 1) -> dw kxk -> 1x1 project,
             ReLU6, residual when stride 1 and cin == cout
``mb3``      Once-for-All MobileNetV3 block; ``expansion`` holds the  NCHW
             *middle channel count* (as OFA's keys do). ``mb3se``
             adds squeeze-excite, ``mb3hs`` uses h-swish instead of
             ReLU, ``mb3sehs`` both
``zero``     ProxylessNAS's zero op / OFA's skipped layer of an       NCHW
             elastic depth: the layer is the identity, costs 0 by
             definition (never measured, never in a LUT)
``skip``     identity, or 1x1 conv -> BN -> ReLU with the stride      NCHW
             when the shape changes
``conv``     k x k conv -> BN -> ReLU (the stem and the head)         NCHW
``pool``     global average pool, flattened to ``(N, C)``             NCHW
``mix``      OFA's feature-mix layer after the pool: a 1x1 conv on    ``(N, C)``
             1x1, i.e. linear -> h-swish
``fc``       fully connected (after a global pool when ``h*w > 1``)   ``(N, C)``
===========  =======================================================  ===========

The canonical key is ``{op}_h{h}_w{w}_cin{cin}_cout{cout}_s{stride}_k{kernel}_e{expansion}_g{groups}``
(every field, always, in this order), e.g. ``tbs_h112_w112_cin16_cout24_s2_k5_e6_g1``.
The HW-NAS-Bench and ProxylessNAS / OFA renderings, and their grammar, are in
:mod:`searchspace.keys`; each parses back to the same entry.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BLOCK_OPS",
    "MB3_OPS",
    "OPS",
    "Entry",
    "EntryKeyError",
    "parse_key",
]

MB3_OPS = ("mb3", "mb3se", "mb3hs", "mb3sehs")
BLOCK_OPS = ("tbs", "mb", *MB3_OPS)
OPS = (*BLOCK_OPS, "zero", "skip", "conv", "pool", "mix", "fc")


_FLAT_OPS = ("pool", "mix", "fc")


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
        if self.op in (*BLOCK_OPS, "conv") and self.kernel % 2 != 1:
            out.append(f"kernel: must be odd, got {self.kernel}")
        if self.op == "tbs":
            mid = self.cin * self.expansion
            for name, channels in (("cin", self.cin), ("cout", self.cout), ("expansion", mid)):
                if channels % self.groups:
                    out.append(f"groups: {self.groups} does not divide {name} channels ({channels})")
        elif self.op not in BLOCK_OPS and self.expansion != 1:
            out.append(f"expansion: only an inverted-residual block has one, got {self.expansion}")
        if self.op != "tbs" and self.groups != 1:
            out.append(f"groups: only a tbs block is grouped, got {self.groups}")
        if self.op in ("skip", "zero", "mix") and self.kernel != 1:
            out.append(f"kernel: a {self.op} is 1x1, got {self.kernel}")
        if self.op == "zero" and (self.stride != 1 or self.cin != self.cout):
            out.append("stride: a zero op keeps the shape (stride 1, cin == cout)")
        if self.op == "pool":
            if self.cin != self.cout:
                out.append("cout: a pool keeps its channels (cin == cout)")
            if self.stride != 1 or self.kernel != self.h:
                out.append("kernel: a global pool has kernel == h and stride 1")
        if self.op in ("fc", "mix") and (self.stride != 1 or self.kernel != 1):
            out.append(f"stride: a {self.op} layer has stride 1 and kernel 1")
        if self.op == "mix" and (self.h, self.w) != (1, 1):
            out.append(f"h: a mix layer follows the global pool (1x1 input), got {self.h}x{self.w}")
        return out

    # -- shapes -------------------------------------------------------------
    @property
    def out_h(self) -> int:
        """Output height (1 for pool and fc)."""
        return 1 if self.op in _FLAT_OPS else -(-self.h // self.stride)

    @property
    def out_w(self) -> int:
        """Output width (1 for pool and fc)."""
        return 1 if self.op in _FLAT_OPS else -(-self.w // self.stride)

    @property
    def has_residual(self) -> bool:
        """Whether an inverted-residual block adds its input to its output (the keys' ``idskip``)."""
        return self.op in BLOCK_OPS and self.stride == 1 and self.cin == self.cout

    @property
    def is_identity(self) -> bool:
        """Whether this is a skip that changes nothing (no computation)."""
        return self.op == "skip" and self.stride == 1 and self.cin == self.cout

    @property
    def is_free(self) -> bool:
        """Whether this entry costs nothing by definition (the zero op): never measured, latency 0."""
        return self.op == "zero"

    @property
    def mid_channels(self) -> int:
        """Channels of a block's depthwise conv (``cin * expansion``; ``expansion`` itself for ``mb3*``)."""
        return self.expansion if self.op in MB3_OPS else self.cin * self.expansion

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The NCHW input shape (``(N, C)`` for an fc entry whose input is 1x1)."""
        if self.op in ("fc", "mix") and self.h == self.w == 1:
            return (batch, self.cin)
        return (batch, self.cin, self.h, self.w)

    def output_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The output shape: NCHW, or ``(N, C)`` for pool, mix and fc."""
        if self.op in _FLAT_OPS:
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
        from .keys import hwnasbench_key

        return hwnasbench_key(self)

    def proxyless_key(self) -> str:
        """The ProxylessNAS / OFA rendering."""
        from .keys import proxyless_key

        return proxyless_key(self)

    def render(self, style: str = "canonical") -> str:
        """The key in one of ``canonical``, ``hwnasbench``, ``proxyless``."""
        if style == "canonical":
            return self.key
        if style == "hwnasbench":
            return self.hwnasbench_key()
        if style == "proxyless":
            return self.proxyless_key()
        raise ValueError(f"unknown key style {style!r}; known: canonical, hwnasbench, proxyless")


_CANONICAL_RE = re.compile(
    r"^(?P<op>[a-z][a-z0-9]*)_h(?P<h>\d+)_w(?P<w>\d+)_cin(?P<cin>\d+)_cout(?P<cout>\d+)"
    r"_s(?P<stride>\d+)_k(?P<kernel>\d+)_e(?P<expansion>\d+)_g(?P<groups>\d+)$"
)


def build_entry_fields(fields: dict[str, Any], key: str) -> Entry:
    """The entry of ``fields`` parsed from ``key``; :class:`EntryKeyError` naming the key if impossible."""
    try:
        return Entry(**fields)
    except (TypeError, ValueError) as exc:
        raise EntryKeyError(f"key {key!r}: {exc}") from None


def parse_key(key: str) -> Entry:
    """Parse a key in any of the three renderings into its entry.

    Raises :class:`EntryKeyError` (a ``ValueError``) saying what is wrong.
    """
    if not isinstance(key, str) or not key:
        raise EntryKeyError("key: expected a non-empty string")
    match = _CANONICAL_RE.match(key)
    if match:
        fields: dict[str, Any] = {k: (v if k == "op" else int(v)) for k, v in match.groupdict().items()}
        return build_entry_fields(fields, key)
    from .keys import parse_foreign_key

    return parse_foreign_key(key)
