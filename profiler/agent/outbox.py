"""The agent's outbox: measured results kept on disk until the server acknowledges them.

One fsynced JSON file per result under ``<slot>/outbox``, and one per lease
in flight under ``<slot>/leases``, so that a restarted agent (even after
``kill -9``) uploads what finished and hands back what did not.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Outbox"]


class Outbox:
    """Measured results not yet acknowledged, one fsynced JSON file each, and the leases in flight.

    ``put`` writes a result before anything tries to upload it; ``ack``
    deletes it once the server stored it; ``reject`` moves one the server
    will never take (lease lost, job gone) to ``rejected/`` (kept, not lost).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.pending_dir = self.root / "outbox"
        self.rejected_dir = self.root / "rejected"
        self.leases_dir = self.root / "leases"
        for folder in (self.pending_dir, self.rejected_dir, self.leases_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @staticmethod
    def _write(path: Path, doc: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def put(self, record: dict[str, Any]) -> Path:
        """Keep one result: ``{job_id, lease_id, item_id, key, stats, provenance, overhead_us}``."""
        path = self.pending_dir / f"{record['job_id']}-{record['item_id']}.json"
        with self._lock:
            self._write(path, record)
        return path

    def pending(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every result not yet acknowledged, oldest first."""
        out = []
        with self._lock:
            paths = sorted(self.pending_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for path in paths:
                try:
                    out.append((path, json.loads(path.read_text())))
                except (OSError, ValueError):
                    continue
        return out

    def ack(self, paths: Sequence[Path]) -> None:
        """The server stored these: forget them."""
        with self._lock:
            for path in paths:
                path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> None:
        """The server will never take this result: keep it under ``rejected/`` with the reason."""
        with self._lock:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                return
            self._write(self.rejected_dir / path.name, {**doc, "rejected": reason})
            path.unlink(missing_ok=True)

    def begin_lease(self, job_id: int, lease_id: str, item_ids: Sequence[int] | None) -> None:
        """Remember a lease being claimed (``item_ids`` None: not granted yet) or measured.

        A restarted agent hands back what it did not finish: the unmeasured
        items, or everything the server leased under an id it never heard back about.
        """
        items = None if item_ids is None else list(item_ids)
        self._write(self.leases_dir / f"{lease_id}.json", {"job_id": job_id, "lease_id": lease_id, "items": items})

    def end_lease(self, lease_id: str) -> None:
        """The lease's measuring is over (what finished is in the outbox)."""
        (self.leases_dir / f"{lease_id}.json").unlink(missing_ok=True)

    def leases(self) -> list[dict[str, Any]]:
        """Leases a previous run left behind."""
        out = []
        for path in sorted(self.leases_dir.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
        return out
