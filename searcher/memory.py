"""Peak memory of one training step.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
  (the tensors torch allocated; the caching allocator may hold more).
* CPU (Linux): the resident-set high-water mark ``VmHWM`` of
  ``/proc/self/status``, reset before each step by writing ``5`` to
  ``/proc/self/clear_refs`` (Linux >= 4.0), so it is the peak *of that step*
  — the whole process's resident memory (weights, data, Python) included.
* Elsewhere (no ``/proc``): ``getrusage``'s ``ru_maxrss``, the peak of the
  whole process so far (:attr:`StepMemory.per_step` is then False).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

__all__ = ["StepMemory"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _vm_hwm_bytes() -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _can_reset_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        _vm_hwm_bytes()
    except OSError:
        return False
    return True


class StepMemory:
    """Reset before a step, read after it: the peak bytes the step needed."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.per_step = self.cuda or _can_reset_rss()
        self.kind = "CUDA max_memory_allocated" if self.cuda else "peak RSS" if self.per_step else "process peak RSS"

    def reset(self) -> None:
        """Start a new measurement window."""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.per_step:
            _CLEAR_REFS.write_text("5")

    def peak_bytes(self) -> int:
        """The peak since :meth:`reset` (see the module docstring for what is counted)."""
        if self.cuda:
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.per_step:
            return _vm_hwm_bytes()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
