"""The built-in spaces, by name, and the loader of a space by name or spec file.

FBNet's space (Wu et al., CVPR 2019, Table 1), ProxylessNAS's mobile space
(Cai et al., ICLR 2019) and Once-for-All's MobileNetV3 space (Cai et al.,
ICLR 2020), each at any resolution; a YAML or JSON spec file
(:meth:`searchspace.SpaceSpec.from_text`) for any other macro-architecture. A
new built-in space is a builder here, registered in :data:`BUILTIN_SPACES`
with its source in :data:`SPACE_SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .ops import FBNET_CANDIDATES, OFA_CANDIDATES, PROXYLESS_CANDIDATES
from .spec import HeadSpec, SpaceSpec, SpecError, StageSpec, StemSpec

__all__ = ["BUILTIN_SPACES", "SPACE_SOURCES", "fbnet_space", "load_space", "ofa_mbv3_space", "proxylessnas_space"]

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


# ProxylessNAS mobile (proxyless_nas/model_zoo + search/models/super_nets/super_proxyless.py):
# width_stages, n_cell_stages, stride_stages.
_PROXYLESS_STAGES = ((24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1))


def proxylessnas_space(resolution: int = 224) -> SpaceSpec:
    """ProxylessNAS's mobile space (Cai et al., ICLR 2019) at ``resolution``.

    Stem 3x3 conv, 32 channels, stride 2; a first MBConv layer of expansion 1
    to 16 channels (kernel 3, 5 or 7, as the Pixel 1 table has); six stages
    of MBConv blocks (kernel 3/5/7, expansion 3/6, ReLU6) of widths
    24-40-80-96-192-320, 4-4-4-4-4-1 layers, strides 2-2-2-1-2-1; every layer
    but a stage's first may be the zero op; 1x1 conv to 1280; the classifier
    pools (its ``Logits`` entry takes the 7x7 map at 224). The Pixel 1 table
    ``mobile_trim.yaml`` (han-cai/files) holds every entry of it at 224.
    """
    stages = [StageSpec(16, 1, 1, candidates=("k3_e1", "k5_e1", "k7_e1"))]
    stages += [StageSpec(c, n, s, min_depth=1) for c, n, s in _PROXYLESS_STAGES]
    return SpaceSpec(
        name="proxylessnas-mobile",
        block="mb",
        resolution=resolution,
        stages=tuple(stages),
        candidates=PROXYLESS_CANDIDATES,
        stem=StemSpec(32, 3, 2),
        head=HeadSpec(1280, 1, pool=False),
        num_classes=1000,
    )


# OFA MobileNetV3 at width 1.2 (ofa/imagenet_classification/elastic_nn/networks/ofa_mbv3.py,
# the Note10 table's widths): (channels, stride, squeeze-excite, h-swish) per stage, 4 layers each.
_OFA_STAGES = (
    (32, 2, False, False),
    (48, 2, True, False),
    (96, 2, False, True),
    (136, 1, True, True),
    (192, 2, True, True),
)


def ofa_mbv3_space(resolution: int = 224) -> SpaceSpec:
    """Once-for-All's MobileNetV3 space (Cai et al., ICLR 2020), width 1.2, at ``resolution``.

    Stem 3x3 conv to 24 channels, stride 2; a fixed first block (kernel 3,
    expansion 1, ReLU); five stages of MobileNetV3 blocks of widths
    32-48-96-136-192, strides 2-2-2-1-2, squeeze-excite in stages 2, 4, 5,
    h-swish in stages 3-5; kernel 3/5/7 and expand ratio 3/4/6 per layer (the
    block's middle channels, OFA's ``make_divisible(cin * ratio, 8)``, are the
    entry's ``expansion``); elastic depth 2-4 per stage (layers 3 and 4 may be
    ``zero``); 1x1 conv to 1152, pool, feature-mix 1x1 conv to 1536 with
    h-swish, classifier. The Note10 table ``ofa/note10/224_lookup_table.yaml``
    (han-cai/files) holds every entry of it at 224.
    """
    stages = [StageSpec(24, 1, 1, candidates=("k3_e1",))]
    stages += [StageSpec(c, 4, s, min_depth=2, se=se, hswish=hs) for c, s, se, hs in _OFA_STAGES]
    return SpaceSpec(
        name="ofa-mbv3",
        block="mb3",
        resolution=resolution,
        stages=tuple(stages),
        candidates=OFA_CANDIDATES,
        stem=StemSpec(24, 3, 2),
        head=HeadSpec(1152, 1, mix_channels=1536),
        num_classes=1000,
    )


BUILTIN_SPACES: dict[str, Callable[[int], SpaceSpec]] = {
    "fbnet": fbnet_space,
    "proxylessnas-mobile": proxylessnas_space,
    "ofa-mbv3": ofa_mbv3_space,
}

#: Where each built-in space comes from (``hwlut space show`` prints it).
SPACE_SOURCES: dict[str, str] = {
    "fbnet": "FBNet (Wu et al., CVPR 2019, arXiv 1812.03443), Table 1; at <= 64 the CIFAR layout of HW-NAS-Bench "
    "(Li et al., ICLR 2021).",
    "proxylessnas-mobile": "ProxylessNAS (Cai et al., ICLR 2019, arXiv 1812.00332), mobile setting: "
    "github.com/mit-han-lab/proxylessnas, search/models/super_nets/super_proxyless.py; its Pixel 1 LUT "
    "mobile_trim.yaml is han-cai/files proxylessnas/mobile_trim.yaml.",
    "ofa-mbv3": "Once-for-All (Cai et al., ICLR 2020, arXiv 1908.09791), OFAMobileNetV3 width 1.2: "
    "github.com/mit-han-lab/once-for-all, ofa/imagenet_classification/elastic_nn/networks/ofa_mbv3.py; its "
    "Note10 LUT is han-cai/files ofa/note10/224_lookup_table.yaml.",
}


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
