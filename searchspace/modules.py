"""Torch builders of entries and whole networks (imports torch; ``searchspace`` does not).

Every op of :mod:`searchspace.entries` has one constructor taking the entry;
:func:`build_entry` dispatches through :data:`BUILDERS`, and
:func:`build_network` chains a network's entries in execution order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .entries import MB3_OPS, Entry
from .spec import Architecture, SpaceSpec, make_divisible

__all__ = [
    "BUILDERS",
    "ChannelShuffle",
    "Classifier",
    "ConvBNReLU",
    "FeatureMix",
    "GlobalAvgPool",
    "MBBlock",
    "MBV3Block",
    "SkipBlock",
    "SqueezeExcite",
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
    """k x k conv (no bias) -> BN -> optional activation (ReLU unless ``act`` names another), 'same' padding."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        relu: bool = True,
        act: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            act() if relu else nn.Identity(),
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


class MBBlock(nn.Module):
    """ProxylessNAS's MBConv (MobileNetV2's inverted residual), as in its ``MBInvertedConvLayer``.

    1x1 conv -> BN -> ReLU6 (absent at expansion 1) -> k x k depthwise conv with
    the stride -> BN -> ReLU6 -> 1x1 conv -> BN, plus the input when stride is 1
    and cin == cout (the keys' ``idskip``).
    """

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBNReLU(cin, mid, 1, act=nn.ReLU6) if expansion > 1 else nn.Identity()
        self.depthwise = ConvBNReLU(mid, mid, kernel, stride, groups=mid, act=nn.ReLU6)
        self.project = ConvBNReLU(mid, cout, 1, relu=False)
        self.has_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.has_residual else y


class SqueezeExcite(nn.Module):
    """OFA's ``SELayer``: pool -> 1x1 conv (to ``make_divisible(c / 4)``) -> ReLU -> 1x1 conv -> h-sigmoid -> scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = make_divisible(channels // 4)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.expand(self.relu(self.reduce(y))))


class MBV3Block(nn.Module):
    """OFA's MobileNetV3 block (``MBConvLayer`` in a ``ResidualBlock``), ``mid`` middle channels.

    1x1 conv -> BN -> act (absent when mid == cin) -> k x k depthwise conv with
    the stride -> BN -> act -> squeeze-excite (``se``) -> 1x1 conv -> BN, plus
    the input when stride is 1 and cin == cout; act is h-swish (``hswish``) or ReLU.
    """

    def __init__(self, cin: int, cout: int, stride: int, kernel: int, mid: int, se: bool, hswish: bool) -> None:
        super().__init__()
        act = nn.Hardswish if hswish else nn.ReLU
        self.expand = ConvBNReLU(cin, mid, 1, act=act) if mid != cin else nn.Identity()
        self.depthwise = ConvBNReLU(mid, mid, kernel, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid) if se else nn.Identity()
        self.project = ConvBNReLU(mid, cout, 1, relu=False)
        self.has_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.has_residual else y


class FeatureMix(nn.Sequential):
    """OFA's feature-mix layer after the pool: a 1x1 conv on 1x1 (a linear layer, no bias) -> h-swish, on ``(N, C)``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Linear(cin, cout, bias=False), nn.Hardswish())


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
        if x.dim() == 4 and isinstance(self.pool, nn.Identity):  # a 1x1 map where the classifier pools itself
            x = x.flatten(1)
        return self.fc(self.pool(x))


BUILDERS: dict[str, Callable[[Entry], nn.Module]] = {
    "tbs": lambda e: TBSBlock(e.cin, e.cout, e.stride, e.kernel, e.expansion, e.groups),
    "mb": lambda e: MBBlock(e.cin, e.cout, e.stride, e.kernel, e.expansion),
    **{
        op: (lambda e: MBV3Block(e.cin, e.cout, e.stride, e.kernel, e.expansion, "se" in e.op, e.op.endswith("hs")))
        for op in MB3_OPS
    },
    "zero": lambda e: nn.Identity(),
    "mix": lambda e: FeatureMix(e.cin, e.cout),
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
