"""A space spec as a plain dict and back: the checks of every field (see :mod:`searchspace.spec`).

Fields that keep their defaults are left out of :func:`spec_to_dict`, so a
spec written before a field existed keeps its text and its hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .ops import parse_candidate

if TYPE_CHECKING:
    from .spec import SpaceSpec

__all__ = ["BLOCKS", "SPEC_FORMAT", "SpecError", "spec_kwargs", "spec_to_dict"]

SPEC_FORMAT = 1
#: The block families a spec's ``block`` may name (see :mod:`searchspace.entries`).
BLOCKS = ("tbs", "mb", "mb3")


class SpecError(ValueError):
    """A space spec that cannot describe a network; the message names the field."""


def positive_int(value: Any, where: str) -> int:
    """``value`` if it is a positive integer, else a :class:`SpecError` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: must be a positive integer, got {value!r}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: must be true or false, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - set(allowed)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")


def candidate_names(value: Any, where: str) -> tuple[str, ...]:
    """A checked tuple of candidate names (:class:`SpecError` naming ``where``)."""
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


def spec_to_dict(spec: SpaceSpec) -> dict[str, Any]:
    """A plain, JSON/YAML-ready dict of ``spec`` (defaults of the newer fields left out)."""
    stages = []
    for stage in spec.stages:
        item: dict[str, Any] = {"channels": stage.channels, "repeats": stage.repeats, "stride": stage.stride}
        if stage.candidates is not None:
            item["candidates"] = list(stage.candidates)
        for name, default in (("min_depth", 1), ("se", False), ("hswish", False)):
            if getattr(stage, name) != default:
                item[name] = getattr(stage, name)
        stages.append(item)
    head: dict[str, Any] = {"channels": spec.head.channels, "kernel": spec.head.kernel}
    if spec.head.mix_channels is not None:
        head["mix_channels"] = spec.head.mix_channels
    if not spec.head.pool:
        head["pool"] = False
    out: dict[str, Any] = {"format": SPEC_FORMAT, "name": spec.name}
    if spec.block != "tbs":
        out["block"] = spec.block
    out.update(
        {
            "resolution": spec.resolution,
            "in_channels": spec.in_channels,
            "stem": {"channels": spec.stem.channels, "kernel": spec.stem.kernel, "stride": spec.stem.stride},
            "stages": stages,
            "candidates": list(spec.candidates),
            "head": head,
            "num_classes": spec.num_classes,
        }
    )
    return out


def spec_kwargs(data: Mapping[str, Any]) -> dict[str, Any]:
    """The checked constructor arguments of :class:`~searchspace.spec.SpaceSpec` from a spec dict."""
    from .spec import HeadSpec, StageSpec, StemSpec

    _check_keys(
        data,
        ("format", "name", "block", "resolution", "in_channels", "stem", "stages", "candidates", "head", "num_classes"),
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
    block = data.get("block", "tbs")
    if block not in BLOCKS:
        raise SpecError(f"block: must be one of {', '.join(BLOCKS)}, got {block!r}")
    stem_data = data.get("stem", {})
    _check_keys(stem_data, ("channels", "kernel", "stride"), "stem")
    stem = StemSpec(**{k: positive_int(v, f"stem.{k}") for k, v in stem_data.items()})
    head_data = data.get("head", {})
    _check_keys(head_data, ("channels", "kernel", "mix_channels", "pool"), "head")
    head = HeadSpec(
        **{k: positive_int(v, f"head.{k}") for k, v in head_data.items() if k in ("channels", "kernel")},
        mix_channels=None
        if head_data.get("mix_channels") is None
        else positive_int(head_data["mix_channels"], "head.mix_channels"),
        pool=_flag(head_data.get("pool", True), "head.pool"),
    )
    stages_data = data["stages"]
    if not isinstance(stages_data, Sequence) or isinstance(stages_data, str) or not stages_data:
        raise SpecError("stages: must be a non-empty list")
    stages = []
    for i, stage in enumerate(stages_data):
        where = f"stages[{i}]"
        _check_keys(stage, ("channels", "repeats", "stride", "candidates", "min_depth", "se", "hswish"), where)
        for required in ("channels", "repeats"):
            if required not in stage:
                raise SpecError(f"{where}.{required}: required")
        cands = stage.get("candidates")
        stages.append(
            StageSpec(
                channels=positive_int(stage["channels"], f"{where}.channels"),
                repeats=positive_int(stage["repeats"], f"{where}.repeats"),
                stride=positive_int(stage.get("stride", 1), f"{where}.stride"),
                candidates=None if cands is None else candidate_names(cands, f"{where}.candidates"),
                min_depth=positive_int(stage.get("min_depth", 1), f"{where}.min_depth"),
                se=_flag(stage.get("se", False), f"{where}.se"),
                hswish=_flag(stage.get("hswish", False), f"{where}.hswish"),
            )
        )
    return {
        "name": name,
        "block": block,
        "resolution": positive_int(data["resolution"], "resolution"),
        "stages": tuple(stages),
        "candidates": candidate_names(data["candidates"], "candidates"),
        "stem": stem,
        "head": head,
        "num_classes": positive_int(data.get("num_classes", 1000), "num_classes"),
        "in_channels": positive_int(data.get("in_channels", 3), "in_channels"),
    }
