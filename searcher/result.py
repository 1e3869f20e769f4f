"""What a search reports: per-phase figures of an epoch, and the result document (format ``hwlut-search``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from . import distributed as dd
from .lut import LatencyModel, calibrated_latency
from .report import network_cost
from .target import TARGET_WINDOW, project_to_target, table_predictor

if TYPE_CHECKING:
    from .search import Searcher

__all__ = ["RESULT_FORMAT", "RESULT_VERSION", "PhaseStats", "build_result", "describe"]

RESULT_FORMAT = "hwlut-search"
RESULT_VERSION = 1


@dataclass
class PhaseStats:
    """Loss, correct count, samples, steps and peak step memory of one phase of an epoch."""

    loss: float = 0.0
    correct: int = 0
    seen: int = 0
    steps: int = 0
    peak_bytes: int = 0

    def add(self, loss: float, correct: int, n: int) -> None:
        """Count one step's mean loss and correct predictions over ``n`` samples."""
        self.loss += loss * n
        self.correct += correct
        self.seen += n
        self.steps += 1

    @property
    def mean_loss(self) -> float:
        """Mean loss per sample."""
        return self.loss / max(1, self.seen)

    @property
    def accuracy(self) -> float:
        """Correct predictions per sample."""
        return self.correct / max(1, self.seen)

    def reduce(self, ctx: dd.DistContext, device: torch.device) -> None:
        """Sum loss, correct and seen over the ranks, and take the largest peak memory."""
        self.loss, correct, seen = dd.all_reduce_sum([self.loss, self.correct, self.seen], ctx, device)
        self.correct, self.seen = int(correct), int(seen)
        self.peak_bytes = int(dd.all_reduce_max(self.peak_bytes, ctx, device))


def describe(searcher: Searcher, indices: list[int], probability: float | None = None) -> dict[str, Any]:
    """One architecture of the search: its string, LUT and calibrated latency, FLOPs, params."""
    arch = searcher.net.architecture(indices)
    flops, params = network_cost(searcher.space, arch)
    item: dict[str, Any] = {
        "arch": arch.encode(),
        "latency_us": searcher.table.network_latency(arch),
        "calibrated_latency_us": calibrated_latency(searcher.table, searcher.space, arch),
        "flops": flops,
        "params": params,
    }
    if probability is not None:
        item["probability"] = probability
    return item


def _target_item(searcher: Searcher, probs: torch.Tensor) -> dict[str, Any]:
    """``{"target": ...}``: the likeliest architecture predicted at the target (:mod:`searcher.target`), or {}."""
    target_ms = searcher.config.target_ms
    if target_ms is None:
        return {}
    model = LatencyModel(searcher.table, searcher.space, unit_ms=1.0)
    log_probs = torch.log(probs.double().clamp_min(1e-300)).numpy()
    indices = project_to_target(
        log_probs,
        model.table_us.numpy(),
        model.mask.numpy(),
        model.fixed_us,
        target_ms * 1000.0,
        table_predictor(searcher.table),
    )
    item = describe(searcher, indices, math.prod(float(probs[i, k]) for i, k in enumerate(indices)))
    predicted = item["calibrated_latency_us"] if item["calibrated_latency_us"] is not None else item["latency_us"]
    item.update(
        target_us=target_ms * 1000.0,
        target_raw_us=(searcher.target_raw_ms or target_ms) * 1000.0,
        predicted_error_pct=100.0 * (predicted / (target_ms * 1000.0) - 1.0),
        window_pct=100.0 * TARGET_WINDOW,
    )
    return {"target": item}


@torch.no_grad()
def build_result(searcher: Searcher, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """θ per layer, the argmax architecture and ``config.samples`` draws from ``P_theta``, plus ``extra``."""
    config = searcher.config
    probs = searcher.net.probabilities().cpu()
    theta = searcher.net.theta.detach().cpu()
    layers = []
    for layer in searcher.space.layers:
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
    gen = torch.Generator().manual_seed(config.seed + 1)
    samples = []
    for _ in range(config.samples):
        picks = torch.multinomial(probs, 1, generator=gen).squeeze(1).tolist()
        p = math.prod(float(probs[i, k]) for i, k in enumerate(picks))
        samples.append(describe(searcher, [int(k) for k in picks], p))
    argmax = searcher.net.argmax_indices()
    unit = searcher.unit_ms
    return {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        "lut": {**searcher.source.to_dict(), "space_hash": searcher.table.space.spec_hash},
        "space": searcher.space.to_dict(),
        "config": asdict(config),
        "device": str(searcher.device),
        "amp_dtype": None if searcher.amp_dtype is None else str(searcher.amp_dtype).removeprefix("torch."),
        "latency_unit_ms": unit,
        "loss": (
            f"CE * {config.alpha} * (LAT / {config.target_ms} ms) ^ {config.beta}"
            if config.target_ms is not None
            else f"CE * {config.alpha} * log(LAT / {unit:.6g} ms) ^ {config.beta}"
        ),
        "space_latency_us": {"fastest": searcher.fastest_us, "slowest": searcher.slowest_us},
        "epochs_done": searcher.epoch,
        "expected_latency_us": searcher.expected_latency_us(),
        "layers": layers,
        "argmax": describe(searcher, argmax, math.prod(float(probs[i, k]) for i, k in enumerate(argmax))),
        "samples": samples,
        **_target_item(searcher, probs),
        "history": searcher.history,
        **(extra or {}),
    }
