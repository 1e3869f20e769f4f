"""FBNet's differentiable architecture search, driven by a device's latency LUT.

:mod:`searcher.lut` (LUT sources and the LUT tensor), :mod:`searcher.loss`
(``CE * alpha * log(LAT) ** beta`` and its latency unit),
:mod:`searcher.supernet` (Gumbel-softmax super net), :mod:`searcher.data`
(image folders and proxy tasks), :mod:`searcher.search` (the loop),
:mod:`searcher.checkpoint` and :mod:`searcher.result` (what it writes),
:mod:`searcher.distributed` (torchrun / DDP), :mod:`searcher.memory` (peak
memory per step), :mod:`searcher.estimate` (time before it starts),
:mod:`searcher.report` (cost, plots, cross-device tables).
Imports torch; reaches the server only over HTTP.
"""

from .config import SearchConfig, resolve_device
from .data import ImageFolderDataset, TensorDataset, load_image_folder, proxy_task
from .loss import LatencyLoss, resolve_unit_ms
from .lut import (
    LatencyModel,
    LutSource,
    LutSourceError,
    calibrated_latency,
    check_complete,
    entry_macs,
    fetch_server_lut,
    load_lut_file,
    lut_content_hash,
    synthetic_table,
)
from .report import cross_latencies, network_cost, write_plots
from .search import Searcher, SearchInterrupted
from .supernet import MixedOp, SuperNet, gumbel_softmax, scale_space

__all__ = [
    "ImageFolderDataset",
    "LatencyLoss",
    "LatencyModel",
    "LutSource",
    "LutSourceError",
    "MixedOp",
    "SearchConfig",
    "SearchInterrupted",
    "Searcher",
    "SuperNet",
    "TensorDataset",
    "calibrated_latency",
    "check_complete",
    "cross_latencies",
    "entry_macs",
    "fetch_server_lut",
    "gumbel_softmax",
    "load_image_folder",
    "load_lut_file",
    "lut_content_hash",
    "network_cost",
    "proxy_task",
    "resolve_device",
    "resolve_unit_ms",
    "scale_space",
    "synthetic_table",
    "write_plots",
]
