"""A search result (``search_result.json`` of ``hwlut search``) read for the Search page: P(θ), argmax, curves.

The page renders an uploaded file and stores nothing. A file that is no
search result is refused naming the first field at fault (``layers[3].probability``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_RESULT_BYTES", "SearchView", "search_view"]

#: The largest search result the page reads (a 22-layer result is ~20 kB; with samples, a few hundred).
MAX_RESULT_BYTES = 4_000_000


class _Bad(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True)
class SearchView:
    """P(θ) as layers × candidates (None where a layer lacks the candidate), the argmax and each epoch's figures."""

    label: str
    candidates: tuple[str, ...]
    probability: tuple[tuple[float | None, ...], ...]
    argmax: tuple[str, ...]
    argmax_ms: float | None
    epochs: tuple[Mapping[str, Any], ...]
    loss: str | None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Bad(where, f"expected a finite number, got {value!r}")
    return float(value)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(where, f"expected a list, got {type(value).__name__}")
    return value


def search_view(raw: bytes) -> SearchView:
    """Parse a search result; :class:`ValueError` (with ``.where``) names the field at fault."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Bad("result", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _Bad("result", "expected a JSON object (search_result.json)")
    layers = _list(doc.get("layers"), "layers")
    names: dict[str, None] = {}
    rows: list[dict[str, float]] = []
    for i, layer in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(layer, dict):
            raise _Bad(where, "expected an object")
        cands = [str(c) for c in _list(layer.get("candidates"), f"{where}.candidates")]
        probs = [
            _number(p, f"{where}.probability[{k}]")
            for k, p in enumerate(_list(layer.get("probability"), f"{where}.probability"))
        ]
        if len(cands) != len(probs) or not cands:
            raise _Bad(f"{where}.probability", f"{len(probs)} probabilities for {len(cands)} candidates")
        names.update(dict.fromkeys(cands))
        rows.append(dict(zip(cands, probs, strict=True)))
    argmax = doc.get("argmax") if isinstance(doc.get("argmax"), dict) else {}
    arch = str(argmax.get("arch", "")).split(",") if argmax.get("arch") else []
    if arch and len(arch) != len(rows):
        raise _Bad("argmax.arch", f"{len(arch)} ops for {len(rows)} layers")
    epochs = []
    for i, h in enumerate(_list(doc.get("history", []), "history")):
        if not isinstance(h, dict):
            raise _Bad(f"history[{i}]", "expected an object")
        for key in ("expected_latency_us", "argmax_latency_us"):
            if h.get(key) is not None:
                _number(h[key], f"history[{i}].{key}")
        epochs.append(h)
    lut = doc.get("lut") if isinstance(doc.get("lut"), dict) else {}
    cands = tuple(names)
    return SearchView(
        label=str(lut.get("device") or lut.get("location") or "a search"),
        candidates=cands,
        probability=tuple(tuple(row.get(c) for c in cands) for row in rows),
        argmax=tuple(arch),
        argmax_ms=_number(argmax["latency_us"], "argmax.latency_us") / 1000 if "latency_us" in argmax else None,
        epochs=tuple(epochs),
        loss=str(doc["loss"]) if doc.get("loss") is not None else None,
    )
