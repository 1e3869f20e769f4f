"""A cache of complete LUTs: a complete LUT never changes, so it is loaded once per process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from sqlalchemy.orm import Session

from lut_store.crud import LutSnapshot, lut_snapshot
from lut_store.models import Job, JobStatus

__all__ = ["LutCache"]


class LutCache:
    """Snapshots of complete LUTs, least recently used dropped beyond ``size``."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple[int, datetime | None], LutSnapshot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, *, session: Session, job: Job) -> LutSnapshot:
        """The snapshot of ``job``: cached when complete, loaded fresh otherwise."""
        if job.status != JobStatus.COMPLETE:
            return lut_snapshot(session=session, job=job)
        key = (job.id, job.completed_at)  # ids may be reused after a delete; completion times are not
        with self._lock:
            snap = self._items.get(key)
            if snap is not None:
                self._items.move_to_end(key)
                return snap
        snap = lut_snapshot(session=session, job=job)
        with self._lock:
            self._items[key] = snap
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return snap
