"""Running one search over several processes: torch DDP under ``torchrun``.

``torchrun --nproc-per-node N`` starts N copies of ``hwlut search`` with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
in their environment; :func:`init_distributed` joins them into one process
group (``gloo`` on CPU, ``nccl`` on CUDA, device ``cuda:LOCAL_RANK``).
Without those variables every function here is a no-op on one process.

How the work is divided (see :class:`searcher.search.Searcher`):

* **Data.** Every rank draws the same global batch order from the shared,
  identically seeded generator; :class:`~torch.utils.data.DistributedSampler`
  (``shuffle=False``) then hands rank ``r`` every N-th sample of it, so step
  ``k`` of rank ``r`` sees ``global_batch_k[r::N]`` and the N ranks together
  see exactly the global batch (``--batch-size`` is the global batch).
* **Weights.** :class:`~torch.nn.parallel.DistributedDataParallel` averages
  their gradients over the ranks in the weight phase.
* **θ.** Kept identical on every rank by all-reducing (averaging) its
  gradient before each Adam step (:func:`average_gradient`): every rank
  then applies the same update to the same θ. θ is excluded from DDP's
  bucketed reduction because the mixture is sampled outside DDP's forward.
* **The Gumbel sample** is drawn from that shared generator too, so all
  ranks train the same mixture at every step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from .config import resolve_device

__all__ = [
    "BACKENDS",
    "DistContext",
    "all_reduce_max",
    "all_reduce_sum",
    "average_gradient",
    "broadcast_buffers",
    "broadcast_object",
    "init_distributed",
    "max_rank_difference",
    "process_group",
    "rank_batches",
    "shutdown",
]

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the group (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        """True when several processes share the search."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints, checkpoints and writes results."""
        return self.rank == 0

    def device(self, device_type: str) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` for CUDA under torchrun, else as asked."""
        device = resolve_device(device_type)
        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device


def init_distributed(backend: str = "auto", device_type: str = "auto") -> DistContext:
    """Join the process group that torchrun's environment describes; one process without it.

    ``backend`` ``auto`` picks ``nccl`` when the search runs on CUDA, else ``gloo``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = resolve_device(device_type).type == "cuda"
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl" and not cuda:
        raise ValueError("--backend nccl needs CUDA; use gloo on CPU")
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (after a barrier, so no rank leaves while others still talk)."""
    if ctx.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_batches(order: torch.Tensor, batch_size: int, ctx: DistContext) -> list[torch.Tensor]:
    """This rank's share of the global batches of ``order`` (already shuffled, whole batches).

    ``DistributedSampler`` without its own shuffle gives rank ``r`` positions
    ``r, r+N, ...``; cut into batches of ``batch_size / N`` that is
    ``global_batch[r::N]`` for every global batch.
    """
    if not ctx.active:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    per_rank = -(-batch_size // ctx.world_size)
    positions = list(DistributedSampler(range(len(order)), ctx.world_size, ctx.rank, shuffle=False))
    mine = order[torch.tensor(positions, dtype=torch.long)]
    return [mine[i : i + per_rank] for i in range(0, len(mine), per_rank)]


def all_reduce_sum(values: Sequence[float], ctx: DistContext, device: torch.device) -> list[float]:
    """``values`` summed over the ranks (float64)."""
    if not ctx.active:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def all_reduce_max(value: float, ctx: DistContext, device: torch.device) -> float:
    """The largest ``value`` over the ranks."""
    if not ctx.active:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def average_gradient(param: torch.Tensor, ctx: DistContext) -> None:
    """Replace ``param.grad`` by its mean over the ranks (no-op on one process)."""
    if ctx.active and param.grad is not None:
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(ctx.world_size)


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank."""
    if ctx.active:
        for buf in module.buffers():
            if buf.dtype != torch.bool:  # masks are constant (and not every backend sends bool)
                dist.broadcast(buf, src=0)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank."""
    if not ctx.active:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def max_rank_difference(tensor: torch.Tensor, ctx: DistContext) -> float:
    """``max |tensor_rank - tensor_0|`` over all ranks and elements (0.0 on one process)."""
    if not ctx.active:
        return 0.0
    mine = tensor.detach().float().contiguous()
    ref = mine.clone()
    dist.broadcast(ref, src=0)
    diff = (mine - ref).abs().max().reshape(1).double()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())


@contextlib.contextmanager
def process_group(backend: str = "auto", device_type: str = "auto") -> Iterator[DistContext]:
    """:func:`init_distributed` for a ``with`` block; leaves the group after it (at once on an error)."""
    ctx = init_distributed(backend, device_type)
    try:
        yield ctx
    except BaseException:
        if ctx.active and dist.is_initialized():
            dist.destroy_process_group()
        raise
    shutdown(ctx)
