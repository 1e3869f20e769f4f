"""Torch builders of entries and whole networks (imports torch; ``searchspace`` does not).

Every op of :mod:`searchspace.entries` has one constructor taking the entry;
:func:`build_entry` dispatches through :data:`BUILDERS`, and
:func:`build_network` chains a network's entries in execution order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .entries import Entry
from .spec import Architecture, SpaceSpec

__all__ = [
    "BUILDERS",
    "ChannelShuffle",
    "Classifier",
    "ConvBNReLU",
    "GlobalAvgPool",
    "SkipBlock",
    "TBSBlock",
    "build_entry",
    "build_network",
    "example_input",
    "randomize_",
]


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle between grouped convolutions."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = self.groups
        return x.reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class ConvBNReLU(nn.Sequential):
    """k x k conv (no bias) -> BN -> optional ReLU, 'same' padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU() if relu else nn.Identity(),
        )


class TBSBlock(nn.Module):
    """FBNet's TBS block, as in the reference code.

    1x1 conv (groups g) -> BN -> ReLU -> shuffle (g > 1) -> k x k depthwise conv
    with the stride -> BN -> ReLU -> 1x1 conv (groups g) -> BN, plus the input
    when stride is 1 and cin == cout. The expand conv stays at expansion 1.
    """

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, expansion: int, groups: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBNReLU(cin, mid, 1, groups=groups)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNReLU(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBNReLU(mid, cout, 1, groups=groups, relu=False)
        self.has_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return x + y if self.has_residual else y


class SkipBlock(nn.Sequential):
    """The ``skip`` candidate: identity, or 1x1 conv -> BN -> ReLU when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        if stride == 1 and cin == cout:
            super().__init__(nn.Identity())
        else:
            super().__init__(ConvBNReLU(cin, cout, 1, stride))


class GlobalAvgPool(nn.Module):
    """Global average pool flattened to ``(N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class Classifier(nn.Module):
    """Fully connected layer; pools first when given an NCHW input."""

    def __init__(self, cin: int, cout: int, spatial: bool) -> None:
        super().__init__()
        self.pool = GlobalAvgPool() if spatial else nn.Identity()
        self.fc = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x))


BUILDERS: dict[str, Callable[[Entry], nn.Module]] = {
    "tbs": lambda e: TBSBlock(e.cin, e.cout, e.stride, e.kernel, e.expansion, e.groups),
    "skip": lambda e: SkipBlock(e.cin, e.cout, e.stride),
    "conv": lambda e: ConvBNReLU(e.cin, e.cout, e.kernel, e.stride),
    "pool": lambda e: GlobalAvgPool(),
    "fc": lambda e: Classifier(e.cin, e.cout, spatial=(e.h, e.w) != (1, 1)),
}


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0, example: torch.Tensor | None = None) -> nn.Module:
    """Give every weight and BN statistic seeded random values, so that BN is no identity.

    Convolutions and linear layers get He-scaled normal weights; BN gets random
    affine parameters and, when ``example`` (a batch of inputs) is given, the
    running statistics of that batch (so activations keep a sane scale through
    deep networks), else random ones. Returns ``module`` in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    bns = []
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)):
            fan_in = sub.weight[0].numel()
            sub.weight.copy_(torch.randn(sub.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            if sub.bias is not None:
                sub.bias.copy_(torch.randn(sub.bias.shape, generator=gen) * 0.1)
        elif isinstance(sub, nn.BatchNorm2d):
            c = sub.num_features
            sub.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=gen))
            sub.bias.copy_(0.1 * torch.randn(c, generator=gen))
            sub.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            sub.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            bns.append(sub)
    if example is not None and bns:
        for bn in bns:  # cumulative average over one pass of the example batch
            bn.reset_running_stats()
            bn.momentum = None
        module.train()(example)
        for bn in bns:
            bn.momentum = 0.1
    return module.eval()


def _calibration_batch(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1))


def build_entry(entry: Entry, *, seed: int | None = 0) -> nn.Module:
    """The module of one entry, in eval mode, randomised with ``seed`` (None: torch's init)."""
    module = BUILDERS[entry.op](entry)
    if seed is None:
        return module.eval()
    return randomize_(module, seed, _calibration_batch(entry.input_shape(4), seed))


def build_network(space: SpaceSpec, arch: Architecture | str, *, seed: int | None = 0) -> nn.Sequential:
    """A whole network of ``space``: stem, one block per layer, head, pool, classifier."""
    entries = space.entries_of(arch)
    net = nn.Sequential(*(BUILDERS[e.op](e) for e in entries))
    if seed is None:
        return net.eval()
    return randomize_(net, seed, _calibration_batch(entries[0].input_shape(4), seed))


def example_input(entry: Entry, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A seeded random input of the entry's shape (NCHW, or ``(N, C)``)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(entry.input_shape(batch), generator=gen)
