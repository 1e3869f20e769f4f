"""Candidate operations of a layer-wise search space, and their grammar.

A candidate is named by one small grammar, decoded here and nowhere else::

    skip                 identity, or 1x1 conv -> BN -> ReLU when the shape changes
    zero                 ProxylessNAS's zero op, OFA's dropped layer (elastic
                         depth): the layer is the identity and costs nothing;
                         only where the shape stays (stride 1, cin == cout)
    k{K}_e{E}[_g{G}]     an inverted-residual block of the space's family
                         (``block`` of the spec: FBNet's TBS, ProxylessNAS's
                         MBConv, OFA's MobileNetV3 block): kernel K, expansion
                         E, group count G of its 1x1 convolutions (1 when
                         omitted; TBS only)

FBNet's nine candidates are :data:`FBNET_CANDIDATES`; ProxylessNAS's and
OFA's are :data:`PROXYLESS_CANDIDATES` and :data:`OFA_CANDIDATES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FBNET_CANDIDATES", "OFA_CANDIDATES", "PROXYLESS_CANDIDATES", "Candidate", "parse_candidate"]

_BLOCK_RE = re.compile(r"^k(?P<k>[1-9]\d*)_e(?P<e>[1-9]\d*)(?:_g(?P<g>[1-9]\d*))?$")


@dataclass(frozen=True, order=True)
class Candidate:
    """One choice of a searchable layer."""

    name: str
    kernel: int = 1
    expansion: int = 1
    groups: int = 1
    is_skip: bool = False
    is_zero: bool = False

    def __post_init__(self) -> None:
        if self.is_skip or self.is_zero:
            expected = "skip" if self.is_skip else "zero"
            if self.name != expected or (self.is_skip and self.is_zero):
                raise ValueError(f"a {expected} candidate is named {expected!r}, not {self.name!r}")
            return
        if self.kernel % 2 != 1:
            raise ValueError(f"candidate {self.name!r}: kernel must be odd, got {self.kernel}")
        expected = _render(self.kernel, self.expansion, self.groups)
        if self.name != expected:
            raise ValueError(f"candidate {self.name!r} should be named {expected!r}")


def _render(kernel: int, expansion: int, groups: int) -> str:
    name = f"k{kernel}_e{expansion}"
    return name if groups == 1 else f"{name}_g{groups}"


def parse_candidate(name: str) -> Candidate:
    """Decode a candidate name (``skip``, ``zero``, ``k5_e6``, ``k3_e1_g2``).

    Raises ``ValueError`` naming the grammar when ``name`` does not follow it.
    """
    if name == "skip":
        return Candidate("skip", is_skip=True)
    if name == "zero":
        return Candidate("zero", is_zero=True)
    match = _BLOCK_RE.match(name)
    if match is None:
        raise ValueError(
            f"unknown op {name!r}: expected 'skip', 'zero' or 'k<kernel>_e<expansion>[_g<groups>]'"
            " such as 'k5_e6' or 'k3_e1_g2'"
        )
    return Candidate(
        name,
        kernel=int(match["k"]),
        expansion=int(match["e"]),
        groups=int(match["g"] or 1),
    )


FBNET_CANDIDATES: tuple[str, ...] = (
    "k3_e1",
    "k3_e1_g2",
    "k3_e3",
    "k3_e6",
    "k5_e1",
    "k5_e1_g2",
    "k5_e3",
    "k5_e6",
    "skip",
)

#: ProxylessNAS (Cai et al., ICLR 2019): MBConv with kernel 3/5/7 and expansion 3/6, and the zero op.
PROXYLESS_CANDIDATES: tuple[str, ...] = ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6", "zero")

#: Once-for-All's MobileNetV3 space (Cai et al., ICLR 2020): kernel 3/5/7, expand ratio 3/4/6; ``zero``
#: stands for a layer beyond the stage's chosen depth (elastic depth).
OFA_CANDIDATES: tuple[str, ...] = (
    "k3_e3",
    "k3_e4",
    "k3_e6",
    "k5_e3",
    "k5_e4",
    "k5_e6",
    "k7_e3",
    "k7_e4",
    "k7_e6",
    "zero",
)
