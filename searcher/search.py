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
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from searchspace import LatencyTable, SpaceSpec

from .config import SearchConfig, resolve_device
from .data import iterate_batches, split_indices
from .loss import LatencyLoss, resolve_unit_ms
from .lut import LatencyModel, LutSource, calibrated_latency, check_complete
from .supernet import SuperNet, scale_space

__all__ = [
    "RESULT_FORMAT",
    "SearchConfig",
    "SearchInterrupted",
    "Searcher",
    "resolve_device",
]

RESULT_FORMAT = "hwlut-search"
RESULT_VERSION = 1
CHECKPOINT = "checkpoint.pt"


class SearchInterrupted(RuntimeError):
    """Raised by a callback to stop a search after a checkpoint (e.g. in tests)."""


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


StepCallback = Callable[[str, int, int], None]
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class _PhaseStats:
    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    steps: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, correct: int, n: int) -> None:
        self.loss += loss * n
        self.correct += correct
        self.seen += n
        self.steps += 1

    @property
    def mean_loss(self) -> float:
        return self.loss / max(1, self.seen)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.seen)


class Searcher:
    """One DNAS job: a LUT (and its source), a training set, a config.

    ``space`` defaults to the LUT's own space; any other space must be fully
    covered by the LUT, else :class:`~searchspace.MissingEntries` lists what
    lacks — raised here, before any training.
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
    ) -> None:
        self.table = table
        self.source = source
        self.space = space or table.space
        check_complete(table, self.space)
        self.config = config
        self.train_set = train_set
        self.val_set = val_set
        self.num_classes = len(train_set.classes)  # type: ignore[attr-defined]
        self.device = resolve_device(config.device_type)

        probe = LatencyModel(table, self.space, unit_ms=1.0)
        self.fastest_us, self.slowest_us = probe.bounds_us()
        if config.target_ms is not None:
            self.unit_ms = 1.0
            target = config.target_ms
        else:
            self.unit_ms = resolve_unit_ms(config.latency_unit_ms, self.fastest_us)
            target = None
        self.latency = LatencyModel(table, self.space, unit_ms=self.unit_ms).to(self.device)
        self.criterion = LatencyLoss(config.alpha, config.beta, target=target)

        with torch.random.fork_rng(devices=[]):  # seeded initial weights, the caller's RNG untouched
            torch.manual_seed(config.seed)
            self.net = SuperNet(scale_space(self.space, config.width_mult), self.num_classes)
        self.net.to(self.device)
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

    def step(self, x: torch.Tensor, y: torch.Tensor, tau: float, phase: str) -> tuple[float, int]:
        """One training step of ``phase`` (``weights`` or ``arch``); returns (loss, correct).

        Call :meth:`set_phase` first (the loop does).
        """
        arch = phase == "arch"
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        m = self.net.sample_mixture(tau, generator=self.generator, detach_theta=not arch)
        with self._autocast():
            logits = self.net(x, m)
        ce = F.cross_entropy(logits.float(), y)
        lat = self.latency(m) if self.criterion.use_latency else ce
        loss = self.criterion(ce, lat)
        opt = self.t_opt if arch else self.w_opt
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()
        correct = int((logits.argmax(dim=1) == y).sum())
        return float(loss.detach()), correct

    @torch.no_grad()
    def _measure(self, x: torch.Tensor, y: torch.Tensor, tau: float) -> tuple[float, int]:
        x, y = x.to(self.device), y.to(self.device)
        m = self.net.sample_mixture(tau, generator=self.generator, detach_theta=True)
        with self._autocast():
            logits = self.net(x, m)
        loss = self.criterion(F.cross_entropy(logits.float(), y), self.latency(m))
        return float(loss), int((logits.argmax(dim=1) == y).sum())

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
        self.net.eval()
        m = torch.zeros_like(self.net.theta)
        m[range(m.shape[0]), self.net.argmax_indices()] = 1.0
        order = torch.Generator().manual_seed(self.config.seed)  # own generator: the search's stays untouched
        indices = torch.arange(len(dataset))  # type: ignore[arg-type]
        correct = seen = 0
        for i, (x, y) in enumerate(
            iterate_batches(dataset, indices, self.config.batch_size, order, workers=self.config.workers)
        ):
            if self.config.max_steps is not None and i >= self.config.max_steps:
                break
            x, y = x.to(self.device), y.to(self.device)
            with self._autocast():
                logits = self.net(x, m)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
        self.net.train()
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
    def _fingerprint(self) -> str:
        return f"{self.config.fingerprint()}:{self.source.content_hash[:16]}:{self.space.spec_hash[:16]}"

    def save_checkpoint(self, path: Path) -> None:
        """Everything needed to continue after the epochs done so far."""
        _atomic_torch_save(
            {
                "fingerprint": self._fingerprint(),
                "epoch": self.epoch,
                "net": self.net.state_dict(),
                "w_opt": self.w_opt.state_dict(),
                "t_opt": self.t_opt.state_dict(),
                "sched": self.sched.state_dict(),
                "scaler": self.scaler.state_dict(),
                "generator": self.generator.get_state(),
                "history": json.dumps(self.history),
            },
            path,
        )

    def load_checkpoint(self, path: Path) -> None:
        """Continue from ``path``; refuses one written by a different config, LUT or space."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["fingerprint"] != self._fingerprint():
            raise ValueError(
                f"{path}: the checkpoint belongs to another search (config, LUT or space differ); "
                "use another --out or drop --resume"
            )
        self.net.load_state_dict(state["net"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.t_opt.load_state_dict(state["t_opt"])
        self.sched.load_state_dict(state["sched"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"].cpu())
        self.history = json.loads(state["history"])
        self.epoch = int(state["epoch"])

    # -- the loop ----------------------------------------------------------------------
    def steps_per_epoch(self) -> tuple[int, int]:
        """How many weight and arch steps one epoch takes."""
        bs = self.config.batch_size

        def count(n: int) -> int:
            full = max(1, n // bs) if n > bs else 1
            return full if self.config.max_steps is None else min(full, self.config.max_steps)

        return count(len(self.weight_idx)), count(len(self.arch_idx))

    def _phase(self, phase: str, epoch: int, on_step: StepCallback | None) -> _PhaseStats:
        indices = self.weight_idx if phase == "weights" else self.arch_idx
        total = self.steps_per_epoch()[0 if phase == "weights" else 1]
        tau = self.tau(epoch)
        stats = _PhaseStats()
        self.net.train()
        learn = phase == "weights" or epoch >= self.config.warmup_epochs
        if learn:
            self.set_phase(phase)
        batches = iterate_batches(
            self.train_set, indices, self.config.batch_size, self.generator, workers=self.config.workers
        )
        for i, (x, y) in enumerate(batches):
            if i >= total:
                break
            loss, correct = self.step(x, y, tau, phase) if learn else self._measure(x, y, tau)
            stats.add(loss, correct, len(y))
            if on_step is not None:
                on_step(phase, i + 1, total)
        return stats

    def run(
        self,
        out_dir: str | Path,
        *,
        resume: bool = False,
        on_step: StepCallback | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> dict[str, Any]:
        """Search for ``config.epochs`` epochs, checkpointing into ``out_dir``; returns the result.

        Writes ``out_dir/search_result.json`` at the end. ``on_epoch`` gets
        each epoch's record after its checkpoint is written (raising
        :class:`SearchInterrupted` there stops the search resumably).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ckpt = out / CHECKPOINT
        if resume and ckpt.is_file():
            self.load_checkpoint(ckpt)
        while self.epoch < self.config.epochs:
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
            self.epoch = epoch + 1
            self.save_checkpoint(ckpt)
            if on_epoch is not None:
                on_epoch(record)
        result = self.result()
        (out / "search_result.json").write_text(json.dumps(result, indent=1))
        return result

    # -- the result ----------------------------------------------------------------------
    def _describe(self, indices: list[int], probability: float | None = None) -> dict[str, Any]:
        from .report import network_cost

        arch = self.net.architecture(indices)
        raw = self.table.network_latency(arch)
        flops, params = network_cost(self.space, arch)
        item: dict[str, Any] = {
            "arch": arch.encode(),
            "latency_us": raw,
            "calibrated_latency_us": calibrated_latency(self.table, self.space, arch),
            "flops": flops,
            "params": params,
        }
        if probability is not None:
            item["probability"] = probability
        return item

    @torch.no_grad()
    def result(self) -> dict[str, Any]:
        """θ per layer, the argmax architecture and ``config.samples`` draws from ``P_theta``."""
        probs = self.net.probabilities().cpu()
        theta = self.net.theta.detach().cpu()
        layers = []
        for layer in self.space.layers:
            k = len(layer.candidates)
            layers.append(
                {
                    "index": layer.index,
                    "shape": {"cin": layer.cin, "cout": layer.cout, "h": layer.h, "w": layer.w, "stride": layer.stride},
                    "candidates": list(layer.candidate_names),
                    "theta": [float(v) for v in theta[layer.index, :k]],
                    "probability": [float(v) for v in probs[layer.index, :k]],
                }
            )
        gen = torch.Generator().manual_seed(self.config.seed + 1)
        samples = []
        for _ in range(self.config.samples):
            picks = torch.multinomial(probs, 1, generator=gen).squeeze(1).tolist()
            p = math.prod(float(probs[i, k]) for i, k in enumerate(picks))
            samples.append(self._describe([int(k) for k in picks], p))
        argmax = self.net.argmax_indices()
        return {
            "format": RESULT_FORMAT,
            "version": RESULT_VERSION,
            "lut": {**self.source.to_dict(), "space_hash": self.table.space.spec_hash},
            "space": self.space.to_dict(),
            "config": asdict(self.config),
            "device": str(self.device),
            "amp_dtype": None if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch."),
            "latency_unit_ms": self.unit_ms,
            "loss": (
                f"CE * {self.config.alpha} * (LAT / {self.config.target_ms} ms) ^ {self.config.beta}"
                if self.config.target_ms is not None
                else f"CE * {self.config.alpha} * log(LAT / {self.unit_ms:.6g} ms) ^ {self.config.beta}"
            ),
            "space_latency_us": {"fastest": self.fastest_us, "slowest": self.slowest_us},
            "epochs_done": self.epoch,
            "expected_latency_us": self.expected_latency_us(),
            "layers": layers,
            "argmax": self._describe(argmax, math.prod(float(probs[i, k]) for i, k in enumerate(argmax))),
            "samples": samples,
            "history": self.history,
        }
