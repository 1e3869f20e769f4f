"""A few-shot LUT as a :class:`LatencyTable`: measured entries marked, predicted ones with their uncertainty.

Glue between :mod:`searchspace.fewshot` (the maths) and hwlut's LUT file: it
checks that the basis LUTs are complete LUTs of one space, fits the model to
the K measurements, scores the prediction on each measurement held out
(leave-one-out), and writes per entry ``median``, ``std`` and ``source``
(``"measured"`` for an entry measured on the device, ``"predicted"``
otherwise). The LUT's provenance says how it was made (``method``,
``fewshot``: the basis, the mode, K, the weights, the held-out figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .accuracy import figures
from .fewshot import Basis, FewShotModel, fit_fewshot
from .fit import Design
from .lutfile import LatencyTable
from .spec import SpaceSpec

__all__ = ["basis_from_tables", "fewshot_table", "leave_one_out"]


def basis_from_tables(space: SpaceSpec, tables: Mapping[str, LatencyTable], *, features: bool = True) -> Basis:
    """The basis of complete LUTs of ``space`` (name → table); a ValueError names a table that does not fit."""
    design = Design.of(space)
    luts: dict[str, list[float]] = {}
    for name, table in tables.items():
        if table.space.spec_hash != space.spec_hash:
            raise ValueError(f"basis {name}: a LUT of another space ({table.space.name} at {table.space.resolution})")
        missing = table.missing(list(design.entries))
        if missing:
            raise ValueError(f"basis {name}: incomplete, lacks {len(missing)} entries (first: {missing[0]})")
        luts[name] = [table.latency(e) for e in design.entries]
    return Basis.of(design, luts, features=features)


def leave_one_out(basis: Basis, mode: str, items: Any, y: Sequence[float], *, ridge: float) -> list[float]:
    """Each measurement predicted by a model fitted on the others (µs), in order; needs K >= 3."""
    y = np.asarray(y, dtype=float)
    rows = np.asarray(items)
    out = []
    for i in range(len(y)):
        keep = [j for j in range(len(y)) if j != i]
        model = fit_fewshot(basis, mode, rows[keep], y[keep], ridge=ridge)
        if mode == "networks":
            out.append(float(model.network_latency(rows[i : i + 1])[0]))
        else:
            out.append(float(model.entry_latency()[int(rows[i])]))
    return out


def fewshot_table(
    basis: Basis,
    mode: str,
    measured: Mapping[str, float],
    *,
    ridge: float = 1e-4,
    device: Mapping[str, Any] | None = None,
) -> tuple[LatencyTable, FewShotModel]:
    """The predicted LUT of a new device from K measurements (µs).

    ``measured``: architecture text → latency (``mode="networks"``) or entry
    key → latency (``mode="entries"``; these entries keep their measured value).
    """
    design = basis.design
    keys = design.keys
    if mode == "networks":
        archs = list(measured)
        items: Any = design.matrix(archs)
    elif mode == "entries":
        index = {k: i for i, k in enumerate(keys)}
        unknown = [k for k in measured if k not in index]
        if unknown:
            raise ValueError(f"measured: {unknown[0]!r} is no entry of the space")
        items = np.array([index[k] for k in measured])
    else:
        raise ValueError(f"mode: expected 'networks' or 'entries', got {mode!r}")
    y = np.array(list(measured.values()), dtype=float)
    model = fit_fewshot(basis, mode, items, y, ridge=ridge)
    median, std = model.entry_latency(), model.entry_std()
    entries: dict[str, dict[str, Any]] = {
        key: {"median": float(m), "std": float(s), "source": "predicted"}
        for key, m, s in zip(keys, median, std, strict=True)
    }
    if mode == "entries":
        for key, value in measured.items():
            entries[key] = {"median": float(value), "source": "measured"}
    record: dict[str, Any] = {"basis": list(basis.names), "k": len(y), "ridge": ridge, **model.summary()}
    if len(y) >= 3:
        loo = leave_one_out(basis, mode, items, y, ridge=ridge)
        record["held_out"] = {"method": "leave-one-out over the K measurements", **figures(loo, y.tolist()).to_dict()}
    table = LatencyTable(
        space=design.space,
        entries=entries,
        device=dict(device) if device else None,
        provenance={"method": f"few-shot from {len(y)} measured {mode}", "fewshot": record},
        complete=True,
    )
    return table, model
