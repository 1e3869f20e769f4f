"""FBNet's stochastic super net, built from a space spec.

Every searchable layer is a :class:`MixedOp` over its candidates: the layer's
output is ``sum_k m_k * op_k(x)`` with ``m = softmax((theta + g) / tau)``,
``g ~ Gumbel(0, 1)`` (:func:`gumbel_softmax`). Blocks, stem, head and
classifier come from :data:`searchspace.modules.BUILDERS`, so a searched
architecture is exactly the network that :func:`~searchspace.modules.build_network`
builds and the LUT times.

``theta`` is one ``(layers, max candidates)`` parameter; positions beyond a
layer's candidates are masked to probability 0, so sampling and the latency
are single tensor operations over all layers at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from searchspace import Architecture, Entry, Layer, SpaceSpec
from searchspace.modules import BUILDERS, GlobalAvgPool

__all__ = ["MixedOp", "SuperNet", "gumbel_softmax", "scale_space", "top_k_mixture"]


def _make_divisible(value: float, divisor: int = 8) -> int:
    """timm's rounding: nearest multiple of ``divisor``, never 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def scale_space(space: SpaceSpec, width_mult: float) -> SpaceSpec:
    """``space`` with every channel count scaled by ``width_mult`` (multiples of 8).

    Layers, candidates, strides and resolution stay, so layer ``i`` and
    candidate ``k`` mean the same in both: a narrow super net trains fast
    while the LUT still prices the full-width network.
    """
    if width_mult == 1.0:
        return space
    if width_mult <= 0:
        raise ValueError(f"width multiplier must be positive, got {width_mult}")
    data = space.to_dict()
    data["stem"]["channels"] = _make_divisible(data["stem"]["channels"] * width_mult)
    data["head"]["channels"] = _make_divisible(data["head"]["channels"] * width_mult)
    for stage in data["stages"]:
        stage["channels"] = _make_divisible(stage["channels"] * width_mult)
    data["name"] = f"{space.name}-x{width_mult:g}"
    return SpaceSpec.from_dict(data)


def gumbel_softmax(
    logits: torch.Tensor, tau: float, *, generator: torch.Generator | None = None, noise: bool = True
) -> torch.Tensor:
    """``softmax((logits + g) / tau)`` over the last dimension, ``g ~ Gumbel(0, 1)``.

    The noise is drawn on the CPU from ``generator`` (so a seeded search is
    reproducible on any device) and moved to ``logits``' device.
    """
    if noise:
        u = torch.rand(logits.shape, generator=generator, dtype=torch.float32)
        g = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
        logits = logits + g.to(device=logits.device, dtype=logits.dtype)
    return torch.softmax(logits / tau, dim=-1)


def top_k_mixture(m: torch.Tensor, k: int) -> tuple[torch.Tensor, list[list[int]]]:
    """The ``k`` largest weights of each layer's sample ``m``, renormalised to sum 1; the rest 0.

    Returns the new mixture and, per layer, the candidate indices kept (those
    of weight > 0), which :meth:`SuperNet.forward` runs while skipping the
    others: a step then holds the activations of ``k`` candidates per layer,
    not all of them (sampled-subset training, as in later DNAS variants).
    """
    if k < 1:
        raise ValueError(f"top-k must be >= 1, got {k}")
    k = min(k, m.shape[-1])
    values, index = m.topk(k, dim=-1)
    kept = torch.zeros_like(m).scatter(-1, index, values)
    kept = kept / kept.sum(dim=-1, keepdim=True)
    active = [
        sorted(int(i) for i, v in zip(row_i, row_v, strict=True) if v > 0)
        for row_i, row_v in zip(index.tolist(), values.tolist(), strict=True)
    ]
    return kept, active


class MixedOp(nn.Module):
    """One searchable layer: every candidate at the layer's shape, mixed by weights."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.names = layer.candidate_names
        self.ops = nn.ModuleList(BUILDERS[layer.entry(c).op](layer.entry(c)) for c in layer.candidates)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: list[int] | None = None) -> torch.Tensor:
        """``sum_k weights[k] * op_k(x)`` over all candidates, or only over ``active`` ones."""
        ks = range(len(self.ops)) if active is None else active
        out = None
        for k in ks:
            y = weights[k] * self.ops[k](x)
            out = y if out is None else out + y
        if out is None:
            raise ValueError("a mixed layer needs at least one active candidate")
        return out


class SuperNet(nn.Module):
    """Stem -> one :class:`MixedOp` per searchable layer -> head -> pool -> mix (OFA) -> classifier.

    ``num_classes`` is the task's (the LUT's classifier entry keeps the
    space's). ``theta`` holds the architecture logits; everything else is a
    weight (:meth:`weight_parameters`).
    """

    mask: torch.Tensor

    def __init__(self, space: SpaceSpec, num_classes: int) -> None:
        super().__init__()
        self.space = space
        fixed = space.fixed_entries()
        self.stem = BUILDERS["conv"](fixed["stem"])
        self.layers = nn.ModuleList(MixedOp(layer) for layer in space.layers)
        self.head = BUILDERS["conv"](fixed["head"])
        self.pool = GlobalAvgPool()  # a separate entry, or the classifier's own pool (ProxylessNAS)
        self.mix = BUILDERS["mix"](fixed["mix"]) if "mix" in fixed else nn.Identity()  # OFA's feature mix
        self.classifier = BUILDERS["fc"](Entry("fc", fixed["fc"].cin, num_classes, 1, 1))
        kmax = max(len(layer.candidates) for layer in space.layers)
        mask = torch.zeros(len(space.layers), kmax, dtype=torch.bool)
        for layer in space.layers:
            mask[layer.index, : len(layer.candidates)] = True
        self.register_buffer("mask", mask)
        self.theta = nn.Parameter(torch.zeros(len(space.layers), kmax))

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter but ``theta``."""
        return (p for name, p in self.named_parameters() if name != "theta")

    def logits(self) -> torch.Tensor:
        """``theta`` with padding positions at -inf."""
        return self.theta.masked_fill(~self.mask, float("-inf"))

    def probabilities(self) -> torch.Tensor:
        """``P_theta``: the softmax of ``theta`` per layer (padding 0)."""
        return torch.softmax(self.logits(), dim=-1)

    def sample_mixture(
        self, tau: float, *, generator: torch.Generator | None = None, detach_theta: bool = False
    ) -> torch.Tensor:
        """One Gumbel-softmax sample ``m`` of shape ``(layers, candidates)``."""
        logits = self.logits()
        if detach_theta:
            logits = logits.detach()
        return gumbel_softmax(logits, tau, generator=generator)

    def forward(self, x: torch.Tensor, m: torch.Tensor, active: list[list[int]] | None = None) -> torch.Tensor:
        """Class logits of ``x`` through the mixture ``m`` (only ``active[i]`` candidates of layer i if given)."""
        x = self.stem(x)
        m = m.to(x.dtype) if x.dtype != m.dtype else m
        for i, layer in enumerate(self.layers):
            x = layer(x, m[i], None if active is None else active[i])
        return self.classifier(self.mix(self.pool(self.head(x))))

    def argmax_indices(self) -> list[int]:
        """The most likely candidate index of every layer."""
        return [int(k) for k in self.logits().argmax(dim=-1).tolist()]

    def architecture(self, indices: list[int]) -> Architecture:
        """The architecture that picks candidate ``indices[i]`` at layer ``i``."""
        pairs = zip(self.space.layers, indices, strict=True)
        return Architecture(tuple(layer.candidate_names[k] for layer, k in pairs))
