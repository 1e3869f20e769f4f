"""Data for a search: image folders, and proxy tasks that need no download.

``ImageFolderDataset``
    torchvision's ``ImageFolder`` layout (``DIR/<class>/<image>``), decoded with
    PIL, resized to the space's resolution, scaled to ``[0, 1]`` and
    normalised per channel. ``load_image_folder(DIR)`` uses ``DIR/train`` when
    it exists (``DIR/val`` is then the held-out split).
``proxy_task("synthetic" | "digits")``
    ``synthetic``: a seeded task of ``num_classes`` smooth random class
    templates, each sample a randomly shifted, noisy copy of its class's
    template; ``digits``: scikit-learn's bundled 8x8 handwritten digits
    (1797 images, 10 classes), scaled up bilinearly and repeated over three
    channels.

The search splits its training set 80/20 (:func:`split_indices`): weights
train on the first part, the architecture on the second.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .distributed import DistContext, rank_batches

__all__ = [
    "IMAGE_SUFFIXES",
    "PROXY_TASKS",
    "ImageFolderDataset",
    "TensorDataset",
    "iterate_batches",
    "load_image_folder",
    "proxy_task",
    "split_indices",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
PROXY_TASKS = ("synthetic", "digits")
_MEAN = (0.5, 0.5, 0.5)
_STD = (0.25, 0.25, 0.25)


class TensorDataset(Dataset):
    """Images (``N, C, H, W`` float) and labels held in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> None:
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images = images
        self.labels = labels
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


class ImageFolderDataset(Dataset):
    """``root/<class>/<image>``: classes are the sorted sub-folder names."""

    def __init__(self, root: str | Path, resolution: int) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            files = sorted(p for p in (self.root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            self.samples.extend((p, label) for p in files)
        if not self.samples:
            raise ValueError(f"{self.root}: no images in class sub-folders (expected ROOT/<class>/<image>)")
        self.resolution = resolution
        self.labels = torch.tensor([label for _, label in self.samples])
        self._mean = np.array(_MEAN, dtype=np.float32)[:, None, None]
        self._std = np.array(_STD, dtype=np.float32)[:, None, None]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((self.resolution, self.resolution), Image.Resampling.BILINEAR)
            array = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy((array - self._mean) / self._std), label


def load_image_folder(root: str | Path, resolution: int) -> tuple[Dataset, Dataset | None]:
    """The training set of ``root`` (``root/train`` when present) and ``root/val`` if any."""
    root = Path(root)
    if (root / "train").is_dir():
        val = ImageFolderDataset(root / "val", resolution) if (root / "val").is_dir() else None
        return ImageFolderDataset(root / "train", resolution), val
    return ImageFolderDataset(root, resolution), None


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def _synthetic(resolution: int, num_classes: int, samples: int, seed: int) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=gen)
    templates = torch.nn.functional.interpolate(coarse, size=(resolution, resolution), mode="bicubic").clamp(0, 1)
    labels = torch.arange(samples) % num_classes
    labels = labels[torch.randperm(samples, generator=gen)]
    shift = max(1, resolution // 8)
    images = torch.empty(samples, 3, resolution, resolution)
    dx = torch.randint(-shift, shift + 1, (samples,), generator=gen)
    dy = torch.randint(-shift, shift + 1, (samples,), generator=gen)
    noise = 0.35 * torch.randn(samples, 3, resolution, resolution, generator=gen)
    for i in range(samples):
        images[i] = torch.roll(templates[labels[i]], (int(dy[i]), int(dx[i])), dims=(1, 2))
    return TensorDataset(_normalise((images + noise).clamp(0, 1)), labels, [f"class{c}" for c in range(num_classes)])


def _digits(resolution: int, samples: int | None, seed: int) -> TensorDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if samples is not None:
        order = order[:samples]
    images = torch.nn.functional.interpolate(images[order], size=(resolution, resolution), mode="bilinear")
    return TensorDataset(_normalise(images.repeat(1, 3, 1, 1)), labels[order], [str(d) for d in range(10)])


def proxy_task(
    name: str = "synthetic",
    *,
    resolution: int = 32,
    num_classes: int = 10,
    samples: int | None = None,
    seed: int = 0,
) -> TensorDataset:
    """A built-in task needing no download: ``synthetic`` (seeded) or ``digits`` (scikit-learn)."""
    if name == "synthetic":
        return _synthetic(resolution, num_classes, samples or 2000, seed)
    if name == "digits":
        return _digits(resolution, samples, seed)
    raise ValueError(f"unknown proxy task {name!r}; known: {', '.join(PROXY_TASKS)}")


def split_indices(n: int, fraction: float = 0.8, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)``: ``fraction`` of it, and the rest."""
    if n < 2:
        raise ValueError("need at least two samples to split")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = min(n - 1, max(1, round(n * fraction)))
    return order[:cut], order[cut:]


def iterate_batches(
    dataset: Dataset,
    indices: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    *,
    workers: int = 0,
    ctx: DistContext | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches of ``dataset[indices]``, the order drawn from ``generator``.

    The last, partial batch is dropped when there is more than one batch (a
    batch of one breaks batch norm). In a distributed run (``ctx``) every
    rank draws the same order and yields its share of each global batch
    (:func:`searcher.distributed.rank_batches`).
    """
    order = indices[torch.randperm(len(indices), generator=generator)]
    if len(order) > batch_size:
        order = order[: len(order) // batch_size * batch_size]
    batches = rank_batches(order, batch_size, ctx or DistContext())
    if isinstance(dataset, TensorDataset):
        for batch in batches:
            yield dataset.images[batch], dataset.labels[batch]
        return
    loader = DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], num_workers=workers)
    yield from loader
