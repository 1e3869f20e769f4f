"""A search's checkpoint: everything needed to continue after the epochs done so far."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .search import Searcher

__all__ = ["CHECKPOINT", "apply_checkpoint", "read_checkpoint", "save_checkpoint"]

CHECKPOINT = "checkpoint.pt"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fingerprint(searcher: Searcher) -> str:
    """What a resumed run must share: the config's trajectory settings, the LUT's content, the space."""
    return f"{searcher.config.fingerprint()}:{searcher.source.content_hash[:16]}:{searcher.space.spec_hash[:16]}"


def save_checkpoint(searcher: Searcher, path: Path) -> None:
    """Weights, θ, both optimisers, the schedule, scaler, generator, history and memory, atomically."""
    _atomic_torch_save(
        {
            "fingerprint": fingerprint(searcher),
            "epoch": searcher.epoch,
            "net": searcher.net.state_dict(),
            "w_opt": searcher.w_opt.state_dict(),
            "t_opt": searcher.t_opt.state_dict(),
            "sched": searcher.sched.state_dict(),
            "scaler": searcher.scaler.state_dict(),
            "generator": searcher.generator.get_state(),
            "history": json.dumps(searcher.history),
            "peak_memory": json.dumps(searcher.peak_memory),
        },
        path,
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's state, every tensor on the CPU (to load anywhere, or to broadcast)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def apply_checkpoint(searcher: Searcher, state: dict[str, Any], path: Path) -> None:
    """Continue from ``state`` (read from ``path``); refuses one of another config, LUT or space."""
    if state["fingerprint"] != fingerprint(searcher):
        raise ValueError(
            f"{path}: the checkpoint belongs to another search (config, LUT or space differ); "
            "use another --out or drop --resume"
        )
    searcher.net.load_state_dict(state["net"])
    searcher.w_opt.load_state_dict(state["w_opt"])
    searcher.t_opt.load_state_dict(state["t_opt"])
    searcher.sched.load_state_dict(state["sched"])
    searcher.scaler.load_state_dict(state["scaler"])
    searcher.generator.set_state(state["generator"].cpu())
    searcher.history = json.loads(state["history"])
    searcher.peak_memory = json.loads(state.get("peak_memory", "[]"))
    searcher.epoch = int(state["epoch"])
