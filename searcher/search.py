"""The search loop: FBNet's schedule over a super net, a LUT and a data set.

Per epoch ``e`` (FBNet, section 4.1):

* ``tau = tau0 * exp(-tau_decay * e)`` (5.0 and 0.045);
* the weights take one pass over 80% of the training split with SGD
  (momentum 0.9, lr 0.1 on a cosine schedule over the epochs, weight decay
  1e-4), ``theta`` held fixed;
* then, from epoch ``warmup_epochs`` on, ``theta`` takes one pass over the
  other 20% with Adam (lr 0.01, weight decay 5e-4), the weights held fixed.
  During warm-up that pass only measures accuracy.

Both phases minimise :class:`~searcher.loss.LatencyLoss` on a fresh
Gumbel-softmax sample per batch. A checkpoint (weights, ``theta``, both
optimisers, the schedule, the random generator, the history) is written after
every epoch; :meth:`Searcher.run` with ``resume=True`` continues from it and
reaches the same ``theta`` as an uninterrupted run with the same seed.

Under ``torchrun`` (:mod:`searcher.distributed`) the weights train under
DistributedDataParallel, θ's gradient is all-reduced, every rank draws the
same Gumbel sample and the same global batch order, and rank 0 alone writes
checkpoints and the result. Each step's peak memory is measured
(:mod:`searcher.memory`).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from searchspace import LatencyTable, SpaceSpec

from . import distributed as dd
from .checkpoint import CHECKPOINT, apply_checkpoint, read_checkpoint, save_checkpoint
from .config import SearchConfig, resolve_device
from .data import iterate_batches, split_indices
from .loss import LatencyLoss, resolve_unit_ms
from .lut import LatencyModel, LutSource, check_complete
from .memory import StepMemory
from .result import RESULT_FORMAT, PhaseStats, build_result
from .supernet import SuperNet, scale_space, top_k_mixture
from .target import raw_for_target, table_predictor

__all__ = [
    "RESULT_FORMAT",
    "SearchConfig",
    "SearchInterrupted",
    "Searcher",
    "resolve_device",
]


class SearchInterrupted(RuntimeError):
    """Raised by a callback to stop a search after a checkpoint (e.g. in tests)."""


StepCallback = Callable[[str, int, int], None]
EpochCallback = Callable[[dict[str, Any]], None]


class Searcher:
    """One DNAS job: a LUT (and its source), a training set, a config.

    ``space`` defaults to the LUT's own space; any other space must be fully
    covered by the LUT, else :class:`~searchspace.MissingEntries` lists what
    lacks — raised here, before any training. ``dist`` is this process's
    place in a torchrun group (default: one process).
    """

    def __init__(
        self,
        table: LatencyTable,
        source: LutSource,
        train_set: Dataset,
        config: SearchConfig,
        *,
        space: SpaceSpec | None = None,
        val_set: Dataset | None = None,
        dist: dd.DistContext | None = None,
    ) -> None:
        self.table = table
        self.source = source
        self.space = space or table.space
        check_complete(table, self.space)
        self.config = config
        self.train_set = train_set
        self.val_set = val_set
        self.num_classes = len(train_set.classes)  # type: ignore[attr-defined]
        self.dist = dist or dd.DistContext()
        self.device = self.dist.device(config.device_type)
        if self.dist.active and config.batch_size % (self.dist.world_size * config.micro_batches):
            raise ValueError(
                f"batch size {config.batch_size} (the global batch) must be a multiple of "
                f"{self.dist.world_size} processes x {config.micro_batches} micro-batches"
            )

        probe = LatencyModel(table, self.space, unit_ms=1.0)
        self.fastest_us, self.slowest_us = probe.bounds_us()
        self.target_raw_ms: float | None = None
        if config.target_ms is not None:
            self.unit_ms = 1.0
            # the loss weighs raw LUT sums: a target on the device is the raw sum the calibration maps to it
            self.target_raw_ms = raw_for_target(config.target_ms * 1000.0, table_predictor(table)) / 1000.0
            target = self.target_raw_ms
        else:
            self.unit_ms = resolve_unit_ms(config.latency_unit_ms, self.fastest_us)
            target = None
        self.latency = LatencyModel(table, self.space, unit_ms=self.unit_ms).to(self.device)
        self.criterion = LatencyLoss(config.alpha, config.beta, target=target)

        with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's RNG untouched
            torch.manual_seed(config.seed)
            self.net = SuperNet(scale_space(self.space, config.width_mult), self.num_classes)
        self.net.to(self.device)
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        if self.dist.active:
            # DDP takes the parameters that require grad when built: the weights; θ is all-reduced by hand
            self.net.theta.requires_grad_(False)
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.net,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.top_k is not None,
            )
            self.net.theta.requires_grad_(True)
        self.memory = StepMemory(self.device)
        self.peak_memory: list[dict[str, float]] = []
        self.weight_params = list(self.net.weight_parameters())
        self.w_opt = torch.optim.SGD(
            self.weight_params, lr=config.weight_lr, momentum=config.weight_momentum, weight_decay=config.weight_decay
        )
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=config.epochs)
        self.t_opt = torch.optim.Adam([self.net.theta], lr=config.theta_lr, weight_decay=config.theta_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.weight_idx, self.arch_idx = split_indices(
            len(train_set),  # type: ignore[arg-type]
            config.weight_fraction,
            seed=config.seed,
        )
        use_amp = config.amp and self.device.type == "cuda"
        bf16 = use_amp and torch.cuda.is_bf16_supported()
        self.amp_dtype: torch.dtype | None = (torch.bfloat16 if bf16 else torch.float16) if use_amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not bf16)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # epochs completed

    # -- one step ---------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def tau(self, epoch: int) -> float:
        """The Gumbel-softmax temperature of ``epoch`` (0-based)."""
        return self.config.tau0 * math.exp(-self.config.tau_decay * epoch)

    def _sample(self, tau: float, *, detach_theta: bool) -> tuple[torch.Tensor, list[list[int]] | None]:
        m = self.net.sample_mixture(tau, generator=self.generator, detach_theta=detach_theta)
        return (m, None) if self.config.top_k is None else top_k_mixture(m, self.config.top_k)

    def _parts(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = self.config.micro_batches
        return [(x, y)] if n == 1 else [(x[c::n], y[c::n]) for c in range(n)]

    def step(self, x: torch.Tensor, y: torch.Tensor, tau: float, phase: str) -> tuple[float, int]:
        """One training step of ``phase`` (``weights`` or ``arch``) on this rank's batch; (loss, correct).

        The batch is cut into ``config.micro_batches`` interleaved parts
        (``x[c::parts]``) whose gradients add up before one optimiser step.
        Call :meth:`set_phase` first (the loop does).
        """
        arch = phase == "arch"
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        m, active = self._sample(tau, detach_theta=not arch)
        model = self.ddp if self.ddp is not None and not arch else self.net
        opt = self.t_opt if arch else self.w_opt
        opt.zero_grad(set_to_none=True)
        parts = self.config.micro_batches
        total, correct = 0.0, 0
        for c, (xc, yc) in enumerate(self._parts(x, y)):
            last = c == parts - 1
            no_sync = self.ddp is not None and model is self.ddp and not last
            with self.ddp.no_sync() if no_sync else contextlib.nullcontext():  # type: ignore[union-attr]
                with self._autocast():
                    logits = model(xc, m, active)
                ce = F.cross_entropy(logits.float(), yc)
                lat = self.latency(m) if self.criterion.use_latency else ce
                loss = self.criterion(ce, lat) / parts
                self.scaler.scale(loss).backward(retain_graph=not last)  # m's graph serves every part
            total += float(loss.detach())
            correct += int((logits.argmax(dim=1) == yc).sum())
        if arch:
            dd.average_gradient(self.net.theta, self.dist)
        self.scaler.step(opt)
        self.scaler.update()
        return total, correct

    @torch.no_grad()
    def _measure(self, x: torch.Tensor, y: torch.Tensor, tau: float) -> tuple[float, int]:
        """The loss and correct count of a step, without learning (θ's warm-up), in the same micro-batches."""
        x, y = x.to(self.device), y.to(self.device)
        m, active = self._sample(tau, detach_theta=True)
        parts = self.config.micro_batches
        total, correct = 0.0, 0
        for xc, yc in self._parts(x, y):
            with self._autocast():
                logits = self.net(xc, m, active)
            total += float(self.criterion(F.cross_entropy(logits.float(), yc), self.latency(m))) / parts
            correct += int((logits.argmax(dim=1) == yc).sum())
        return total, correct

    def set_phase(self, phase: str) -> None:
        """Make the weights (``weights``) or ``theta`` (``arch``) the trainable part."""
        if phase not in ("weights", "arch"):
            raise ValueError(f"phase must be 'weights' or 'arch', got {phase!r}")
        weights = phase == "weights"
        for p in self.weight_params:
            p.requires_grad_(weights)
        self.net.theta.requires_grad_(not weights)

    @torch.no_grad()
    def evaluate(self, dataset: Dataset) -> float:
        """Accuracy of the argmax architecture (one-hot path through the super net, eval mode)."""
        dd.broadcast_buffers(self.net, self.dist)  # rank 0's batch-norm statistics everywhere
        self.net.eval()
        m = torch.zeros_like(self.net.theta)
        m[range(m.shape[0]), self.net.argmax_indices()] = 1.0
        order = torch.Generator().manual_seed(self.config.seed)  # own generator: the search's stays untouched
        indices = torch.arange(len(dataset))  # type: ignore[arg-type]
        correct = seen = 0
        for i, (x, y) in enumerate(
            iterate_batches(dataset, indices, self.config.batch_size, order, workers=self.config.workers, ctx=self.dist)
        ):
            if self.config.max_steps is not None and i >= self.config.max_steps:
                break
            x, y = x.to(self.device), y.to(self.device)
            with self._autocast():
                logits = self.net(x, m)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
        self.net.train()
        correct, seen = dd.all_reduce_sum([correct, seen], self.dist, self.device)
        return correct / max(1, seen)

    # -- expected latency ---------------------------------------------------------
    @torch.no_grad()
    def expected_latency_us(self) -> float:
        """``E_{a ~ P_theta}[LAT(a)]`` in µs (the LUT sum, exact)."""
        probs = self.net.probabilities().double().cpu()
        return float((probs * self.latency.table_us).sum()) + self.latency.fixed_us

    def argmax_latency_us(self) -> float:
        """The raw LUT latency (µs) of the most likely architecture."""
        return self.latency.arch_latency_us(self.net.argmax_indices())

    # -- checkpoints -----------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        """Everything needed to continue after the epochs done so far (rank 0 calls it)."""
        save_checkpoint(self, path)

    def load_checkpoint(self, path: Path) -> None:
        """Continue from ``path``; refuses one written by a different config, LUT or space."""
        apply_checkpoint(self, read_checkpoint(path), path)

    # -- the loop ----------------------------------------------------------------------
    def steps_per_epoch(self) -> tuple[int, int]:
        """How many weight and arch steps one epoch takes."""
        bs = self.config.batch_size

        def count(n: int) -> int:
            full = max(1, n // bs) if n > bs else 1
            return full if self.config.max_steps is None else min(full, self.config.max_steps)

        return count(len(self.weight_idx)), count(len(self.arch_idx))

    def _phase(self, phase: str, epoch: int, on_step: StepCallback | None) -> PhaseStats:
        indices = self.weight_idx if phase == "weights" else self.arch_idx
        total = self.steps_per_epoch()[0 if phase == "weights" else 1]
        tau = self.tau(epoch)
        stats = PhaseStats()
        self.net.train()
        learn = phase == "weights" or epoch >= self.config.warmup_epochs
        if learn:
            self.set_phase(phase)
        batches = iterate_batches(
            self.train_set, indices, self.config.batch_size, self.generator, workers=self.config.workers, ctx=self.dist
        )
        for i, (x, y) in enumerate(batches):
            if i >= total:
                break
            self.memory.reset()
            loss, correct = self.step(x, y, tau, phase) if learn else self._measure(x, y, tau)
            stats.peak_bytes = max(stats.peak_bytes, self.memory.peak_bytes())
            stats.add(loss, correct, len(y))
            if on_step is not None:
                on_step(phase, i + 1, total)
        stats.reduce(self.dist, self.device)
        return stats

    def run(
        self,
        out_dir: str | Path,
        *,
        resume: bool = False,
        pause_after: int | None = None,
        on_start: Callable[[], None] | None = None,
        on_step: StepCallback | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> dict[str, Any]:
        """Search for ``config.epochs`` epochs, checkpointing into ``out_dir``; returns the result.

        Writes ``out_dir/search_result.json`` at the end. ``on_start`` runs
        once a resumed checkpoint is loaded; ``on_epoch`` gets each epoch's
        record (with ``peak_memory_mb``) after its checkpoint is written
        (raising :class:`SearchInterrupted` there stops the search
        resumably, as ``pause_after`` does after that many epochs). In a
        distributed run rank 0 alone touches ``out_dir``; a resumed
        checkpoint reaches the other ranks by broadcast.
        """
        out = Path(out_dir)
        main = self.dist.is_main
        if main:
            out.mkdir(parents=True, exist_ok=True)
        ckpt = out / CHECKPOINT
        if resume:
            state = None
            if main and ckpt.is_file():
                state = read_checkpoint(ckpt)
            state = dd.broadcast_object(state, self.dist)
            if state is not None:
                apply_checkpoint(self, state, ckpt)
        if on_start is not None:
            on_start()
        while self.epoch < self.config.epochs:
            if pause_after is not None and self.epoch >= pause_after:
                raise SearchInterrupted(f"paused after epoch {self.epoch} of {self.config.epochs}")
            epoch = self.epoch
            w = self._phase("weights", epoch, on_step)
            a = self._phase("arch", epoch, on_step)
            self.sched.step()
            record = {
                "epoch": epoch + 1,
                "tau": self.tau(epoch),
                "weight_lr": self.w_opt.param_groups[0]["lr"],
                "theta_trained": epoch >= self.config.warmup_epochs,
                "train_loss": w.mean_loss,
                "train_acc": w.accuracy,
                "arch_loss": a.mean_loss,
                "arch_acc": a.accuracy,
                "val_acc": None if self.val_set is None else self.evaluate(self.val_set),
                "expected_latency_us": self.expected_latency_us(),
                "argmax_latency_us": self.argmax_latency_us(),
            }
            self.history.append(record)
            memory = {"epoch": epoch + 1, "weights": w.peak_bytes / 2**20, "arch": a.peak_bytes / 2**20}
            self.peak_memory.append(memory)
            self.epoch = epoch + 1
            if main:
                self.save_checkpoint(ckpt)
            if on_epoch is not None:
                on_epoch({**record, "peak_memory_mb": memory})
        theta_spread = dd.max_rank_difference(self.net.theta, self.dist)
        result = build_result(
            self,
            {
                "distributed": {
                    "world_size": self.dist.world_size,
                    "backend": self.dist.backend,
                    "theta_max_rank_difference": theta_spread,
                },
                "peak_memory_mb": {"measure": self.memory.kind, "per_epoch": self.peak_memory},
            },
        )
        if main:
            (out / "search_result.json").write_text(json.dumps(result, indent=1))
        return result
