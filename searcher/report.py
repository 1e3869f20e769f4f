"""What a search reports besides θ: network cost, plots, and cross-device tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from searchspace import Architecture, LatencyTable, MissingEntries, SpaceSpec
from searchspace.modules import build_network

__all__ = ["cross_latencies", "network_cost", "write_plots"]


def network_cost(space: SpaceSpec, arch: Architecture | str) -> tuple[int, int]:
    """``(flops, params)`` of one whole network of ``space`` at batch 1.

    FLOPs as counted by :class:`torch.utils.flop_counter.FlopCounterMode`
    (a multiply-add is 2 FLOPs; convolutions and the classifier).
    """
    text = arch.encode() if isinstance(arch, Architecture) else arch
    return _network_cost(space.to_json(), text)


@lru_cache(maxsize=256)
def _network_cost(space_json: str, arch: str) -> tuple[int, int]:
    space = SpaceSpec.from_text(space_json)
    net = build_network(space, arch, seed=None)
    params = sum(p.numel() for p in net.parameters())
    x = torch.zeros(1, space.in_channels, space.resolution, space.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return int(counter.get_total_flops()), int(params)


def cross_latencies(archs: Mapping[str, str], tables: Mapping[str, LatencyTable]) -> dict[str, dict[str, float | None]]:
    """``{search label: {LUT label: latency µs or None}}``: every searched arch on every LUT."""
    out: dict[str, dict[str, float | None]] = {}
    for name, arch in archs.items():
        row: dict[str, float | None] = {}
        for lut_name, table in tables.items():
            try:
                row[lut_name] = table.network_latency(arch)
            except (MissingEntries, ValueError):
                row[lut_name] = None
        out[name] = row
    return out


def write_plots(result: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """``theta.png`` (P_θ per layer) and ``curves.png`` (expected latency and accuracy per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    layers: Sequence[Mapping[str, Any]] = result["layers"]
    names = list(dict.fromkeys(name for layer in layers for name in layer["candidates"]))
    grid = torch.full((len(names), len(layers)), float("nan"))
    for j, layer in enumerate(layers):
        for name, p in zip(layer["candidates"], layer["probability"], strict=True):
            grid[names.index(name), j] = p
    label = result["lut"].get("device") or Path(result["lut"]["location"]).stem
    fig, ax = plt.subplots(figsize=(max(6.0, 0.4 * len(layers) + 2), 0.45 * len(names) + 1.8))
    top = float(grid.nan_to_num(0.0).max())
    image = ax.imshow(grid.numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=max(top, 1e-6))
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks(range(len(layers)), [str(layer["index"]) for layer in layers])
    ax.set_xlabel("searchable layer")
    ax.set_title(f"P(θ) per layer — {label}; argmax: {result['argmax']['latency_us'] / 1000:.3f} ms")
    for j, name in enumerate(result["argmax"]["arch"].split(",")):
        ax.scatter(j, names.index(name), marker="o", facecolors="none", edgecolors="red", s=40)
    fig.colorbar(image, ax=ax, label="probability")
    fig.tight_layout()
    theta_png = out / "theta.png"
    fig.savefig(theta_png, dpi=110)
    plt.close(fig)

    history = result["history"]
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(epochs, [h["expected_latency_us"] / 1000 for h in history], marker="o", label="expected (P_θ)")
    ax1.plot(epochs, [h["argmax_latency_us"] / 1000 for h in history], marker="x", label="argmax arch")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("LUT latency (ms)")
    ax1.set_title(f"latency — {label}")
    ax1.legend()
    ax2.plot(epochs, [h["train_acc"] for h in history], marker="o", label="weights split (80%)")
    ax2.plot(epochs, [h["arch_acc"] for h in history], marker="x", label="θ split (20%)")
    if any(h.get("val_acc") is not None for h in history):
        ax2.plot(epochs, [h.get("val_acc") for h in history], marker="s", label="val, argmax arch")
    ax2.set_xlabel("epoch")
    for axis in (ax1, ax2):
        axis.xaxis.get_major_locator().set_params(integer=True)
    ax2.set_ylabel("accuracy")
    ax2.set_ylim(0, 1)
    ax2.legend()
    fig.tight_layout()
    curves_png = out / "curves.png"
    fig.savefig(curves_png, dpi=110)
    plt.close(fig)
    return [theta_png, curves_png]
