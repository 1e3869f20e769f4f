"""What a write changed: the signal that ends the server's LUT cache generation."""

from __future__ import annotations

from sqlalchemy.orm import Session

__all__ = ["LUTS_CHANGED", "mark_luts_changed"]

#: ``session.info`` key that a write sets when it changes what a complete LUT serves or which LUT
#: ``latest`` names (a job completed, a LUT imported, an accuracy report stored, a device deleted);
#: the server ends its LUT cache's generation on commit.
LUTS_CHANGED = "hwlut_luts_changed"


def mark_luts_changed(session: Session) -> None:
    """Say that this write changes a LUT's answers or which LUTs exist (see :data:`LUTS_CHANGED`)."""
    session.info[LUTS_CHANGED] = True
