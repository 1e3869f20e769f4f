"""A search's settings (:class:`SearchConfig`, FBNet's values by default) and the device it runs on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch

__all__ = ["SearchConfig", "resolve_device"]


@dataclass(frozen=True)
class SearchConfig:
    """Every setting of a search; FBNet's values are the defaults.

    ``target_ms`` switches to the target form of the loss and
    ``latency_unit_ms`` (None: auto) sets the unit of the log form (see
    :mod:`searcher.loss`). ``weight_fraction`` of the training set trains the
    weights, the rest ``theta``. ``width_mult`` narrows the super net (the LUT
    still prices the full-width network); ``max_steps`` caps the steps per
    phase and epoch; ``samples`` is K, the architectures drawn from ``P_theta``
    for the result. ``amp`` applies on CUDA only (bf16 where supported, else
    fp16 with a gradient scaler). ``batch_size`` is the global batch of a
    step, over all processes of a distributed run; ``micro_batches`` splits
    each process's share into that many micro-batches whose gradients add up
    (less memory; one process with ``micro_batches=N`` computes what N
    processes do). ``top_k`` trains only the k largest weights of each
    layer's Gumbel sample per step (None: the full mixture).
    """

    epochs: int = 90
    warmup_epochs: int = 10
    batch_size: int = 64
    alpha: float = 0.2
    beta: float = 0.6
    target_ms: float | None = None
    latency_unit_ms: float | None = None
    tau0: float = 5.0
    tau_decay: float = 0.045
    weight_lr: float = 0.1
    weight_momentum: float = 0.9
    weight_decay: float = 1e-4
    theta_lr: float = 0.01
    theta_decay: float = 5e-4
    weight_fraction: float = 0.8
    width_mult: float = 1.0
    max_steps: int | None = None
    samples: int = 8
    seed: int = 0
    device_type: str = "auto"
    amp: bool = True
    workers: int = 0
    micro_batches: int = 1
    top_k: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if not 0 <= self.warmup_epochs:
            raise ValueError("warmup_epochs must be >= 0")
        if not 0 < self.weight_fraction < 1:
            raise ValueError("weight_fraction must lie in (0, 1)")
        if self.micro_batches < 1 or self.batch_size % self.micro_batches:
            raise ValueError("micro_batches must be >= 1 and divide batch_size")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be >= 1 (or None for the full mixture)")

    def fingerprint(self) -> str:
        """A hash of the settings that shape the trajectory (what a resumed run must share)."""
        data = asdict(self)
        for volatile in ("workers", "samples"):
            data.pop(volatile)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def resolve_device(device_type: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; or ``cpu`` / ``cuda`` / ``cuda:N`` as asked."""
    if device_type == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device_type)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device-type cuda: CUDA is not available here")
    return device
