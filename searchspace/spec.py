"""Declarative search-space specs, layer shapes, distinct LUT entries, architectures.

A space is data. Written as YAML (JSON is the same structure)::

    format: 1
    name: fbnet
    resolution: 224            # input height = width
    in_channels: 3
    stem: {channels: 16, kernel: 3, stride: 2}
    stages:                    # searchable layers, stage by stage
      - {channels: 16, repeats: 1, stride: 1}
      - {channels: 24, repeats: 4, stride: 2}   # stride of the stage's first layer
      # ... a stage may list its own `candidates`, e.g. to forbid `skip` there
    candidates: [k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip]
    head: {channels: 1984, kernel: 1}
    num_classes: 1000

A network of the space is: stem conv -> one candidate per searchable layer ->
head conv -> global average pool -> fully connected. Candidate names follow
the grammar of :mod:`searchspace.ops`; entries and keys are in
:mod:`searchspace.entries`. Optional fields, for other families than FBNet's:

    block: mb                  # k{K}_e{E} builds: tbs (FBNet, default), mb
                               # (ProxylessNAS MBConv), mb3 (OFA MobileNetV3)
    stages:
      - {channels: 48, repeats: 4, stride: 2, se: true, hswish: false, min_depth: 2}
        # se / hswish: the mb3 blocks of the stage have squeeze-excite / h-swish;
        # min_depth: the first layers that may not take `zero` (elastic depth)
    head: {channels: 1152, kernel: 1, mix_channels: 1536, pool: true}
        # mix_channels: OFA's 1x1 conv + h-swish after the pool;
        # pool: false when the classifier pools (ProxylessNAS's Logits on 7x7)
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .entries import Entry
from .named import NAMED_ARCHITECTURES
from .ops import Candidate, parse_candidate
from .specdict import SpecError, spec_kwargs, spec_to_dict

__all__ = [
    "NAMED_ARCHITECTURES",
    "Architecture",
    "ArchitectureError",
    "HeadSpec",
    "Layer",
    "SpaceSpec",
    "SpecError",
    "StageSpec",
    "StemSpec",
]


class ArchitectureError(ValueError):
    """An architecture that does not belong to a space; the message names the layer."""


def make_divisible(value: float, divisor: int = 8) -> int:
    """OFA's channel rounding: the nearest multiple of ``divisor``, never below 90 % of ``value``."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


@dataclass(frozen=True)
class StemSpec:
    """The first convolution (conv -> BN -> ReLU)."""

    channels: int = 16
    kernel: int = 3
    stride: int = 2


@dataclass(frozen=True)
class HeadSpec:
    """The last convolution before pooling (conv -> BN -> ReLU), and what follows it.

    ``mix_channels``: OFA's feature-mix layer (1x1 conv + h-swish after the
    pool), none when ``None``. ``pool``: a pool entry of its own; ``False``
    when the classifier pools (ProxylessNAS's ``Logits`` on the 7x7 map).
    """

    channels: int = 1984
    kernel: int = 1
    mix_channels: int | None = None
    pool: bool = True


@dataclass(frozen=True)
class StageSpec:
    """``repeats`` searchable layers of ``channels`` outputs; the first has ``stride``.

    ``min_depth``: the first layers, which may not take ``zero`` (the stage
    keeps at least that many). ``se``, ``hswish``: the ``mb3`` blocks of the
    stage have squeeze-excite, h-swish.
    """

    channels: int
    repeats: int
    stride: int = 1
    candidates: tuple[str, ...] | None = None
    min_depth: int = 1
    se: bool = False
    hswish: bool = False


@dataclass(frozen=True)
class Layer:
    """One searchable layer at its shape, with the candidates it may take."""

    index: int
    stage: int
    cin: int
    cout: int
    h: int
    w: int
    stride: int
    candidates: tuple[Candidate, ...]
    block: str = "tbs"
    se: bool = False
    hswish: bool = False

    @property
    def candidate_names(self) -> tuple[str, ...]:
        """The names of this layer's candidates, in spec order."""
        return tuple(c.name for c in self.candidates)

    @property
    def shape_key(self) -> tuple[int, int, int, int, int]:
        """``(cin, cout, h, w, stride)``: layers sharing it share their entries."""
        return (self.cin, self.cout, self.h, self.w, self.stride)

    def entry(self, candidate: str | Candidate) -> Entry:
        """The LUT entry of ``candidate`` at this layer's shape."""
        cand = candidate if isinstance(candidate, Candidate) else parse_candidate(candidate)
        shape = {"cin": self.cin, "cout": self.cout, "h": self.h, "w": self.w, "stride": self.stride}
        if cand.is_skip:
            return Entry("skip", **shape)
        if cand.is_zero:
            return Entry("zero", **shape)
        if self.block == "mb3":
            op = "mb3" + ("se" if self.se else "") + ("hs" if self.hswish else "")
            mid = make_divisible(round(self.cin * cand.expansion))
            return Entry(op, **shape, kernel=cand.kernel, expansion=mid, groups=cand.groups)
        return Entry(self.block, **shape, kernel=cand.kernel, expansion=cand.expansion, groups=cand.groups)


@dataclass(frozen=True)
class Architecture:
    """One candidate per searchable layer, in layer order."""

    ops: tuple[str, ...]

    def encode(self) -> str:
        """The compact text form: candidate names joined by commas."""
        return ",".join(self.ops)

    def __str__(self) -> str:
        return self.encode()


@dataclass(frozen=True)
class SpaceSpec:
    """A layer-wise search space: macro-architecture plus candidates per layer."""

    name: str
    resolution: int
    stages: tuple[StageSpec, ...]
    candidates: tuple[str, ...]
    stem: StemSpec = field(default_factory=StemSpec)
    head: HeadSpec = field(default_factory=HeadSpec)
    num_classes: int = 1000
    in_channels: int = 3
    block: str = "tbs"

    def __post_init__(self) -> None:
        # Validate once, here, so every spec that exists is usable.
        self.layers  # noqa: B018 - computing the layers checks every shape

    # -- serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/YAML-ready dict (the spec format documented above)."""
        return spec_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpaceSpec:
        """Build and validate a spec; :class:`SpecError` names the bad field."""
        return cls(**spec_kwargs(data))

    def to_json(self) -> str:
        """The spec as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def to_yaml(self) -> str:
        """The spec as YAML."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_text(cls, text: str) -> SpaceSpec:
        """Parse a spec from JSON or YAML text."""
        import yaml

        try:
            data = yaml.safe_load(text)  # YAML is a superset of JSON
        except yaml.YAMLError as exc:
            raise SpecError(f"spec: not valid YAML/JSON: {exc}") from None
        return cls.from_dict(data)

    @property
    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON form: equal specs, equal hashes."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    # -- shapes -----------------------------------------------------------------
    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every searchable layer with its input shape, in order."""
        cached = self.__dict__.get("_layers")
        if cached is not None:
            return cached
        layers = []
        h = w = -(-self.resolution // self.stem.stride)
        cin = self.stem.channels
        for s, stage in enumerate(self.stages):
            if self.block != "mb3" and (stage.se or stage.hswish):
                raise SpecError(f"stages[{s}]: se and hswish belong to a space of block mb3, not {self.block}")
            names = stage.candidates if stage.candidates is not None else self.candidates
            all_cands = tuple(parse_candidate(n) for n in names)
            for r in range(stage.repeats):
                stride = stage.stride if r == 0 else 1
                cands = all_cands if r >= stage.min_depth else tuple(c for c in all_cands if not c.is_zero)
                if not cands:
                    raise SpecError(f"stages[{s}].candidates: layer {r} of the stage has no candidate but zero")
                layer = Layer(
                    len(layers), s, cin, stage.channels, h, w, stride, cands, self.block, stage.se, stage.hswish
                )
                for cand in cands:
                    try:
                        layer.entry(cand)
                    except ValueError as exc:
                        raise SpecError(
                            f"stages[{s}]: candidate {cand.name!r} impossible at layer "
                            f"{layer.index} ({cin}->{stage.channels}, {h}x{w}): {exc}"
                        ) from None
                layers.append(layer)
                h, w = -(-h // stride), -(-w // stride)
                cin = stage.channels
        result = tuple(layers)
        object.__setattr__(self, "_layers", result)
        return result

    @property
    def final_hw(self) -> tuple[int, int]:
        """Height and width of the feature map that the head sees."""
        last = self.layers[-1]
        return -(-last.h // last.stride), -(-last.w // last.stride)

    def fixed_entries(self) -> dict[str, Entry]:
        """The entries every network contains: stem, head, pool, mix (OFA), classifier, in that order."""
        r = self.resolution
        h, w = self.final_hw
        c_last, c_head = self.stages[-1].channels, self.head.channels
        out = {
            "stem": Entry("conv", self.in_channels, self.stem.channels, r, r, self.stem.stride, self.stem.kernel),
            "head": Entry("conv", c_last, c_head, h, w, 1, self.head.kernel),
        }
        if self.head.pool:
            out["pool"] = Entry("pool", c_head, c_head, h, w, 1, h)
        c_fc = c_head
        if self.head.mix_channels is not None:
            c_fc = self.head.mix_channels
            out["mix"] = Entry("mix", c_head, c_fc, 1, 1)
        fc_hw = (1, 1) if self.head.pool else (h, w)  # without a pool entry the classifier pools
        out["fc"] = Entry("fc", c_fc, self.num_classes, *fc_hw)
        return out

    def block_entries(self) -> list[Entry]:
        """Distinct entries of the searchable layers, in first-seen order (the free zero op left out)."""
        seen: dict[Entry, None] = {}
        for layer in self.layers:
            for cand in layer.candidates:
                entry = layer.entry(cand)
                if not entry.is_free:
                    seen.setdefault(entry, None)
        return list(seen)

    def distinct_entries(self) -> list[Entry]:
        """Every entry that any network of the space contains: a LUT's full key set."""
        fixed = dict(self.fixed_entries())
        ordered = [fixed.pop("stem"), *self.block_entries(), *fixed.values()]
        return list(dict.fromkeys(ordered))

    @property
    def num_architectures(self) -> int:
        """How many architectures the space holds."""
        return math.prod(len(layer.candidates) for layer in self.layers)

    # -- architectures ----------------------------------------------------------
    def decode(self, text: str | Sequence[str]) -> Architecture:
        """Parse ``k3_e1,skip,...`` (or a list of names) into an architecture of this space.

        A name of :data:`NAMED_ARCHITECTURES` for this space (``fbnet-c``)
        stands for its op list. Raises :class:`ArchitectureError` naming the
        layer and the problem.
        """
        if isinstance(text, str) and "," not in text:
            named = NAMED_ARCHITECTURES.get(self.name, {})
            text = named.get(text.strip().lower().replace("_", "-"), text)
        ops = [p.strip() for p in text.split(",")] if isinstance(text, str) else [str(p) for p in text]
        layers = self.layers
        if len(ops) != len(layers):
            raise ArchitectureError(
                f"architecture: expected {len(layers)} ops (one per searchable layer of {self.name!r}), got {len(ops)}"
            )
        for layer, op in zip(layers, ops, strict=True):
            where = f"layer {layer.index} (stage {layer.stage}, {layer.cin}->{layer.cout}, stride {layer.stride})"
            try:
                cand = parse_candidate(op)
            except ValueError as exc:
                raise ArchitectureError(f"{where}: {exc}") from None
            if cand not in layer.candidates:
                what = "skip is not allowed" if cand.is_skip else f"{op!r} is not a candidate"
                raise ArchitectureError(f"{where}: {what} here; allowed: {', '.join(layer.candidate_names)}")
        return Architecture(tuple(ops))

    def sample(self, rng: random.Random) -> Architecture:
        """A uniformly random architecture drawn with ``rng``."""
        return Architecture(tuple(rng.choice(layer.candidate_names) for layer in self.layers))

    def entries_of(self, arch: Architecture | str) -> list[Entry]:
        """The entries of one whole network, in execution order (stem ... fc; a zero layer has none)."""
        return [entry for _, entry in self.named_entries_of(arch)]

    def named_entries_of(self, arch: Architecture | str) -> list[tuple[str, Entry]]:
        """:meth:`entries_of`, each named: ``stem``, ``layer{i}``, then ``head``, ``pool``, ``mix``, ``fc``."""
        if isinstance(arch, str):
            arch = self.decode(arch)
        fixed = dict(self.fixed_entries())
        blocks = [(f"layer{la.index}", la.entry(op)) for la, op in zip(self.layers, arch.ops, strict=True)]
        return [("stem", fixed.pop("stem")), *((n, b) for n, b in blocks if not b.is_free), *fixed.items()]
