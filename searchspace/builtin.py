"""The built-in spaces, by name, and the loader of a space by name or spec file.

FBNet's space (Wu et al., CVPR 2019, Table 1) at any resolution; a YAML or
JSON spec file (:meth:`searchspace.SpaceSpec.from_text`) for any other
macro-architecture. A new built-in space is a builder here, registered in
:data:`BUILTIN_SPACES`.
"""

from __future__ import annotations

from pathlib import Path

from .ops import FBNET_CANDIDATES
from .spec import HeadSpec, SpaceSpec, SpecError, StageSpec, StemSpec

__all__ = ["BUILTIN_SPACES", "fbnet_space", "load_space"]

# FBNet (Wu et al., CVPR 2019), Table 1.
_FBNET_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
_FBNET_REPEATS = (1, 4, 4, 4, 4, 4, 1)
_FBNET_STRIDES_IMAGENET = (1, 2, 2, 2, 1, 2, 1)
_FBNET_STRIDES_CIFAR = (1, 1, 2, 2, 1, 2, 1)


def fbnet_space(
    resolution: int = 224,
    *,
    head_channels: int | None = None,
    num_classes: int | None = None,
) -> SpaceSpec:
    """FBNet's space at ``resolution``.

    At 224 (or any resolution above 64): the ImageNet layout, stem stride 2,
    stage strides ``[1, 2, 2, 2, 1, 2, 1]``, head 1984 channels, 1000 classes.
    At 32 (or any resolution up to 64): the CIFAR layout that HW-NAS-Bench
    uses, stem stride 1, strides ``[1, 1, 2, 2, 1, 2, 1]``, head 1504, 100 classes.
    ``head_channels`` (e.g. 1504, as FBNet-A) and ``num_classes`` override.
    """
    cifar = resolution <= 64
    strides = _FBNET_STRIDES_CIFAR if cifar else _FBNET_STRIDES_IMAGENET
    return SpaceSpec(
        name="fbnet",
        resolution=resolution,
        stages=tuple(StageSpec(c, n, s) for c, n, s in zip(_FBNET_CHANNELS, _FBNET_REPEATS, strides, strict=True)),
        candidates=FBNET_CANDIDATES,
        stem=StemSpec(16, 3, 1 if cifar else 2),
        head=HeadSpec(head_channels or (1504 if cifar else 1984), 1),
        num_classes=num_classes or (100 if cifar else 1000),
    )


BUILTIN_SPACES = {"fbnet": fbnet_space}


def load_space(name_or_path: str | Path = "fbnet", *, resolution: int | None = None) -> SpaceSpec:
    """A built-in space by name, or a spec file (YAML or JSON).

    ``resolution`` picks a built-in space's variant; for a spec file it replaces
    the file's input resolution and keeps its strides.
    """
    builder = BUILTIN_SPACES.get(str(name_or_path))
    if builder is not None:
        return builder(resolution or 224)
    path = Path(name_or_path)
    if not path.is_file():
        raise SpecError(
            f"space: {str(name_or_path)!r} is neither a built-in space ({', '.join(BUILTIN_SPACES)}) nor a spec file"
        )
    spec = SpaceSpec.from_text(path.read_text())
    if resolution is not None and resolution != spec.resolution:
        data = spec.to_dict()
        data["resolution"] = resolution
        spec = SpaceSpec.from_dict(data)
    return spec
