"""FBNet's latency-aware loss, and the latency unit that keeps it well defined.

FBNet (Wu et al., 2019, eq. 2) minimises::

    L(a, w) = CE(a, w) * alpha * log(LAT(a)) ** beta       (alpha 0.2, beta 0.6, LAT in ms)

**Why a unit.** ``log(LAT)`` is positive only while ``LAT > 1`` unit. FBNet's
ImageNet networks take tens of milliseconds on a phone, so milliseconds work;
the 32x32 variant on a desktop CPU may take well under 1 ms. There
``log(LAT)`` turns negative, ``log(LAT) ** 0.6`` is undefined, and the loss
would *reward* latency. So the latency is measured in units of ``unit_ms``
milliseconds:

* ``unit_ms=None`` (the default, ``--latency-unit auto``): 1 ms — FBNet's
  exact loss — when the fastest network of the space takes at least e ms;
  otherwise the unit is shrunk to (fastest latency) / e, so that
  ``log(LAT) >= 1`` for every network in the space;
* an explicit ``unit_ms`` must leave ``LAT / unit > 1`` for the fastest
  network, else :class:`ValueError` says so before training.

Since the expected latency of any mixture lies between the fastest and the
slowest network, ``log(LAT)`` then stays positive throughout the search.

**Target form.** With ``target_ms`` set (``--target-latency``), the loss is
``CE * alpha * (LAT / target) ** beta`` instead (in the spirit of MnasNet's
``(LAT / T) ** w``): no log, no unit question, and ``alpha`` is the weight at
the target.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LatencyLoss", "resolve_unit_ms"]


def resolve_unit_ms(unit_ms: float | None, fastest_us: float) -> float:
    """The latency unit (ms) for a space whose fastest network takes ``fastest_us``."""
    fastest_ms = fastest_us / 1000.0
    if fastest_ms <= 0:
        raise ValueError("the LUT's fastest network has latency 0: the log-latency loss is undefined")
    if unit_ms is None:
        return min(1.0, fastest_ms / math.e)
    if unit_ms <= 0:
        raise ValueError(f"latency unit must be positive, got {unit_ms} ms")
    if fastest_ms / unit_ms <= 1.0:
        raise ValueError(
            f"latency unit {unit_ms} ms: the fastest network ({fastest_ms:.4g} ms) is under 1 unit, so "
            f"log(LAT) would be negative; use a unit below {fastest_ms:.4g} ms or --latency-unit auto"
        )
    return float(unit_ms)


class LatencyLoss(torch.nn.Module):
    """``CE * alpha * log(LAT) ** beta`` (or ``CE * alpha * (LAT / target) ** beta``).

    ``lat`` is given in the latency unit of :class:`~searcher.lut.LatencyModel`.
    ``use_latency=False`` drops the latency factor (``CE * alpha``), for
    measuring what the term costs.
    """

    def __init__(
        self,
        alpha: float = 0.2,
        beta: float = 0.6,
        *,
        target: float | None = None,
        use_latency: bool = True,
    ) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if target is not None and target <= 0:
            raise ValueError(f"target latency must be positive, got {target}")
        self.alpha = alpha
        self.beta = beta
        self.target = target
        self.use_latency = use_latency

    def latency_factor(self, lat: torch.Tensor) -> torch.Tensor:
        """``alpha * log(lat) ** beta`` (or ``alpha * (lat / target) ** beta``)."""
        if self.target is not None:
            return self.alpha * (lat / self.target) ** self.beta
        return self.alpha * torch.log(lat) ** self.beta

    def forward(self, ce: torch.Tensor, lat: torch.Tensor) -> torch.Tensor:
        """The loss of a batch whose cross entropy is ``ce`` at expected latency ``lat``."""
        if not self.use_latency:
            return ce * self.alpha
        return ce * self.latency_factor(lat)
