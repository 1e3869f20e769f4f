"""How long a search will take, from one timed weight step and one timed θ step."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .supernet import top_k_mixture

if TYPE_CHECKING:
    from .search import Searcher

__all__ = ["estimate_seconds", "time_steps"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(searcher: Searcher, dataset: Dataset | None = None) -> tuple[float, float]:
    """Seconds of one weight step and one θ step on one batch of this rank (after an untimed pair).

    Forward and backward only, no optimiser step, Gumbel noise from a
    generator of its own, weights and batch-norm statistics restored: the
    search is left as it was.
    """
    s = searcher
    data = dataset or s.train_set
    n = min(len(data), s.config.batch_size // s.dist.world_size)  # type: ignore[arg-type]
    x = torch.stack([data[i][0] for i in range(n)]).to(s.device)
    y = torch.tensor([int(data[i][1]) for i in range(n)], device=s.device)
    saved = {k: v.clone() for k, v in s.net.state_dict().items()}
    gen = torch.Generator().manual_seed(s.config.seed + 2)
    seconds: dict[str, float] = {}
    s.net.train()
    for phase in ("weights", "arch", "weights", "arch"):
        s.set_phase(phase)
        model = s.ddp if s.ddp is not None and phase == "weights" else s.net
        _sync(s.device)
        t0 = time.perf_counter()
        m = s.net.sample_mixture(s.tau(0), generator=gen, detach_theta=phase == "weights")
        active = None
        if s.config.top_k is not None:
            m, active = top_k_mixture(m, s.config.top_k)
        with s._autocast():
            logits = model(x, m, active)
        s.criterion(F.cross_entropy(logits.float(), y), s.latency(m)).backward()
        _sync(s.device)
        seconds[phase] = time.perf_counter() - t0
    for p in s.net.parameters():
        p.grad = None
    s.net.load_state_dict(saved)
    return seconds["weights"], seconds["arch"]


def estimate_seconds(searcher: Searcher, weight_s: float, arch_s: float) -> float:
    """The remaining epochs' steps at ``weight_s`` and ``arch_s`` per step (evaluation not counted)."""
    w_steps, a_steps = searcher.steps_per_epoch()
    return (searcher.config.epochs - searcher.epoch) * (w_steps * weight_s + a_steps * arch_s)
