"""The table ``hwlut profile --recheck N`` prints: each rechecked entry's median and CI before and after."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_recheck"]


def _ci(ci: list[float] | None, median: float | None) -> str:
    """The CI as ``±0.12%`` of the median (half its width)."""
    return "-" if not ci or not median else f"±{(ci[1] - ci[0]) / 2 / median:.2%}"


def print_recheck(console: Console, record: dict[str, Any]) -> None:
    """Before / after of every rechecked entry, which one was kept, and the sentinel's speed then and at the build."""
    rows = record.get("entries") or []
    if not rows:
        console.print("recheck: no entry to re-measure")
        return
    table = Table(title=f"recheck: {len(rows)} entries ({record['rule']})", title_justify="left")
    for name in ("entry", "before µs", "before CI", "after µs", "after CI", "kept"):
        table.add_column(name, justify="left" if name in ("entry", "kept") else "right")
    for row in rows:
        after = "-" if row["after_median"] is None else f"{row['after_median']:.1f}"
        table.add_row(
            row["key"],
            f"{row['before_median']:.1f}",
            _ci(row["before_ci"], row["before_median"]),
            after,
            _ci(row["after_ci"], row["after_median"]),
            row["kept"],
        )
    console.print(table)
    build = record.get("build_sentinel_reference_us")
    then = f", at the build {build:.1f} µs" if build else ""
    console.print(
        f"  sentinel {record['sentinel_reference_us']:.1f} µs at the recheck{then}; "
        f"passes {record['passes']}, redone {record['passes_redone']}, max drift {record['max_abs_drift']:.1%}",
        highlight=False,
    )
