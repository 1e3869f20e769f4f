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
:mod:`searchspace.entries`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .entries import Entry
from .ops import Candidate, parse_candidate

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

SPEC_FORMAT = 1


class SpecError(ValueError):
    """A space spec that cannot describe a network; the message names the field."""


class ArchitectureError(ValueError):
    """An architecture that does not belong to a space; the message names the layer."""


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: must be a positive integer, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - set(allowed)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")


@dataclass(frozen=True)
class StemSpec:
    """The first convolution (conv -> BN -> ReLU)."""

    channels: int = 16
    kernel: int = 3
    stride: int = 2


@dataclass(frozen=True)
class HeadSpec:
    """The last convolution before pooling (conv -> BN -> ReLU)."""

    channels: int = 1984
    kernel: int = 1


@dataclass(frozen=True)
class StageSpec:
    """``repeats`` searchable layers of ``channels`` outputs; the first has ``stride``."""

    channels: int
    repeats: int
    stride: int = 1
    candidates: tuple[str, ...] | None = None


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
        return Entry("tbs", **shape, kernel=cand.kernel, expansion=cand.expansion, groups=cand.groups)


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

    def __post_init__(self) -> None:
        # Validate once, here, so every spec that exists is usable.
        self.layers  # noqa: B018 - computing the layers checks every shape

    # -- serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/YAML-ready dict (the spec format documented above)."""
        stages = []
        for stage in self.stages:
            item: dict[str, Any] = {
                "channels": stage.channels,
                "repeats": stage.repeats,
                "stride": stage.stride,
            }
            if stage.candidates is not None:
                item["candidates"] = list(stage.candidates)
            stages.append(item)
        return {
            "format": SPEC_FORMAT,
            "name": self.name,
            "resolution": self.resolution,
            "in_channels": self.in_channels,
            "stem": {"channels": self.stem.channels, "kernel": self.stem.kernel, "stride": self.stem.stride},
            "stages": stages,
            "candidates": list(self.candidates),
            "head": {"channels": self.head.channels, "kernel": self.head.kernel},
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpaceSpec:
        """Build and validate a spec; :class:`SpecError` names the bad field."""
        _check_keys(
            data,
            ("format", "name", "resolution", "in_channels", "stem", "stages", "candidates", "head", "num_classes"),
            "spec",
        )
        fmt = data.get("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise SpecError(f"format: this hwlut reads spec format {SPEC_FORMAT}, got {fmt!r}")
        for required in ("name", "resolution", "stages", "candidates"):
            if required not in data:
                raise SpecError(f"{required}: required")
        name = data["name"]
        if not isinstance(name, str) or not name.strip():
            raise SpecError(f"name: must be a non-empty string, got {name!r}")
        stem_data = data.get("stem", {})
        _check_keys(stem_data, ("channels", "kernel", "stride"), "stem")
        stem = StemSpec(**{k: _positive_int(v, f"stem.{k}") for k, v in stem_data.items()})
        head_data = data.get("head", {})
        _check_keys(head_data, ("channels", "kernel"), "head")
        head = HeadSpec(**{k: _positive_int(v, f"head.{k}") for k, v in head_data.items()})
        stages_data = data["stages"]
        if not isinstance(stages_data, Sequence) or isinstance(stages_data, str) or not stages_data:
            raise SpecError("stages: must be a non-empty list")
        stages = []
        for i, stage in enumerate(stages_data):
            where = f"stages[{i}]"
            _check_keys(stage, ("channels", "repeats", "stride", "candidates"), where)
            for required in ("channels", "repeats"):
                if required not in stage:
                    raise SpecError(f"{where}.{required}: required")
            cands = stage.get("candidates")
            stages.append(
                StageSpec(
                    channels=_positive_int(stage["channels"], f"{where}.channels"),
                    repeats=_positive_int(stage["repeats"], f"{where}.repeats"),
                    stride=_positive_int(stage.get("stride", 1), f"{where}.stride"),
                    candidates=None if cands is None else _candidate_names(cands, f"{where}.candidates"),
                )
            )
        return cls(
            name=name,
            resolution=_positive_int(data["resolution"], "resolution"),
            stages=tuple(stages),
            candidates=_candidate_names(data["candidates"], "candidates"),
            stem=stem,
            head=head,
            num_classes=_positive_int(data.get("num_classes", 1000), "num_classes"),
            in_channels=_positive_int(data.get("in_channels", 3), "in_channels"),
        )

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
            names = stage.candidates if stage.candidates is not None else self.candidates
            cands = tuple(parse_candidate(n) for n in names)
            for r in range(stage.repeats):
                stride = stage.stride if r == 0 else 1
                layer = Layer(len(layers), s, cin, stage.channels, h, w, stride, cands)
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
        """The entries every network contains: stem, head, pool, classifier."""
        r = self.resolution
        h, w = self.final_hw
        c_last = self.stages[-1].channels
        return {
            "stem": Entry("conv", self.in_channels, self.stem.channels, r, r, self.stem.stride, self.stem.kernel),
            "head": Entry("conv", c_last, self.head.channels, h, w, 1, self.head.kernel),
            "pool": Entry("pool", self.head.channels, self.head.channels, h, w, 1, h),
            "fc": Entry("fc", self.head.channels, self.num_classes, 1, 1),
        }

    def block_entries(self) -> list[Entry]:
        """Distinct entries of the searchable layers, in first-seen order."""
        seen: dict[Entry, None] = {}
        for layer in self.layers:
            for cand in layer.candidates:
                seen.setdefault(layer.entry(cand), None)
        return list(seen)

    def distinct_entries(self) -> list[Entry]:
        """Every entry that any network of the space contains: a LUT's full key set."""
        fixed = self.fixed_entries()
        ordered = [fixed["stem"], *self.block_entries(), fixed["head"], fixed["pool"], fixed["fc"]]
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
        """The entries of one whole network, in execution order (stem ... fc)."""
        if isinstance(arch, str):
            arch = self.decode(arch)
        fixed = self.fixed_entries()
        blocks = [layer.entry(op) for layer, op in zip(self.layers, arch.ops, strict=True)]
        return [fixed["stem"], *blocks, fixed["head"], fixed["pool"], fixed["fc"]]


def _candidate_names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise SpecError(f"{where}: must be a non-empty list of candidate names")
    names = []
    for i, name in enumerate(value):
        if not isinstance(name, str):
            raise SpecError(f"{where}[{i}]: must be a string, got {name!r}")
        try:
            parse_candidate(name)
        except ValueError as exc:
            raise SpecError(f"{where}[{i}]: {exc}") from None
        names.append(name)
    if len(set(names)) != len(names):
        raise SpecError(f"{where}: lists a candidate twice")
    return tuple(names)


#: Published architectures of a space, by name (``SpaceSpec.decode("fbnet-c")``). FBNet-A/B/C: the
#: searched networks of Wu et al. (CVPR 2019), Figure 4, as in FBNet's model definitions
#: (``ir_k5_s2`` there is ``k5_e1_g2`` here). They keep the space's head (FBNet-A used 1504 channels).
NAMED_ARCHITECTURES: dict[str, dict[str, str]] = {
    "fbnet": {
        "fbnet-a": "skip,k3_e3,k3_e1,skip,skip,k5_e6,k3_e3,k5_e1,k3_e3,k5_e6,k5_e3,k5_e1_g2,k5_e6,"
        "k3_e6,k5_e1_g2,k5_e1,k3_e1_g2,k5_e6,k5_e6,k5_e3,k5_e6,k5_e6",
        "fbnet-b": "k3_e1,k3_e6,k5_e1,k3_e1,k3_e1,k5_e6,k5_e3,k3_e6,k5_e6,k5_e6,k5_e1,skip,k5_e3,"
        "k5_e6,k3_e1,k5_e1,k5_e3,k5_e6,k5_e1,k5_e6,k5_e6,k3_e6",
        "fbnet-c": "k3_e1,k3_e6,skip,k3_e1,k3_e1,k5_e6,k5_e3,k5_e6,k3_e6,k5_e6,k5_e3,k5_e6,k5_e6,"
        "k5_e6,k5_e6,k5_e6,k5_e3,k5_e6,k5_e6,k5_e6,k5_e6,k3_e6",
    },
}
