"""LUTs in memory: a complete LUT never changes, so a server process loads it once.

:class:`LutCache` keeps three things, so that a query for a complete LUT
needs no database round trip:

- **snapshots** of complete LUTs (:class:`CachedLut`), keyed by job id,
  completion time and the time of the LUT's accuracy upload (if any), least
  recently used dropped beyond ``size``; each keeps its entries' JSON answers
  and its whole-table documents rendered once;
- **references**: which LUT ``(device, "latest" | job id)`` names, resolved
  once per *generation*;
- **device tokens** found valid (by digest), for reads behind a read token.

The generation ends (:meth:`LutCache.invalidate`) when a write through this
process completes a job, imports a LUT, stores a LUT's accuracy or deletes a device. What another
process writes (another worker, ``hwlut lut import``) is seen within
``ttl_s``, after which a reference is resolved again. An incomplete LUT is
never cached: it is read afresh on every query.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from lut_store import Store
from lut_store.crud import LutSnapshot, device_by_token, hash_token, lut_snapshot, resolve_lut, snapshot_table
from lut_store.formats import TableRow, write_table
from lut_store.models import JobStatus

from .convert import entry_public

__all__ = ["CachedLut", "LutCache"]


class CachedLut:
    """A LUT snapshot with its answers rendered once: each entry's JSON, each whole-table format."""

    def __init__(self, snapshot: LutSnapshot) -> None:
        self.snapshot = snapshot
        self.job_id = snapshot.job_id
        self._entries: dict[str, bytes | None] = {}  # asked-for key -> JSON answer, None when absent
        self._entries_max = 4 * len(snapshot.rows) + 1024
        self._documents: dict[str, bytes] = {}

    @staticmethod
    def _render(row: TableRow | None) -> bytes | None:
        return None if row is None else entry_public(row).model_dump_json().encode()

    def entry_json(self, key: str) -> bytes | None:
        """The JSON answer for ``key`` in any rendering, ``None`` when the LUT lacks it.

        Raises :class:`lut_store.crud.Invalid` for a key that is neither stored nor parseable.
        """
        try:
            return self._entries[key]
        except KeyError:
            pass
        body = self._render(self.snapshot.find(key))
        if len(self._entries) < self._entries_max:  # keys come from clients: bounded
            self._entries[key] = body
        return body

    def entry_json_by_canonical(self, canonical: str) -> bytes | None:
        """The JSON answer for a canonical entry key, ``None`` when the LUT lacks it."""
        try:
            return self._entries[canonical]
        except KeyError:
            pass
        body = self._render(self.snapshot.by_entry.get(canonical))
        if len(self._entries) < self._entries_max:
            self._entries[canonical] = body
        return body

    def has_document(self, fmt: str) -> bool:
        """Whether the whole table in ``fmt`` is rendered already."""
        return fmt in self._documents

    def document(self, fmt: str) -> bytes:
        """The whole table in ``fmt`` (rendered on first use); :class:`FormatError` when ``fmt`` cannot hold it."""
        body = self._documents.get(fmt)
        if body is None:
            text, _left_out = write_table(snapshot_table(self.snapshot), fmt)
            body = self._documents[fmt] = text.encode()
        return body


class LutCache:
    """Complete LUTs, the references that name them, and valid device tokens (see the module's docstring)."""

    def __init__(self, size: int = 64, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self.generation = 0
        self.clock = clock
        self._luts: OrderedDict[tuple[int, datetime | None, str | None], CachedLut] = OrderedDict()
        self._refs: dict[tuple[str, str], list] = {}  # [expires, lut, being read again]
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def lookup(self, device: str, ref: str) -> CachedLut | None:
        """The cached LUT ``ref`` of ``device``, without touching the database; ``None`` when not known.

        Past its time to live, a reference is still answered while one caller
        (the first to see it expired, who gets ``None``) reads it again, so a
        crowd of queries never stalls on the database all at once.
        """
        hit = self._refs.get((device, ref))
        if hit is None:
            return None
        if hit[0] >= self.clock():
            return hit[1]
        with self._lock:
            if hit[2]:  # someone is reading it again: answer from memory meanwhile
                return hit[1]
            hit[2] = True
        return None

    def peek(self, device: str, ref: str) -> CachedLut | None:
        """Like :meth:`lookup`, but never the one to read an expired reference again (``None`` then)."""
        hit = self._refs.get((device, ref))
        if hit is None or (hit[0] < self.clock() and not hit[2]):
            return None
        return hit[1]

    def resolve(self, *, store: Store, device: str, ref: str) -> CachedLut:
        """The LUT ``ref`` of ``device``: from memory, else from the database (a blocking call).

        Raises the store's :class:`~lut_store.crud.NotFound` / :class:`~lut_store.crud.Invalid`.
        """
        return self.lookup(device, ref) or self.load(store=store, device=device, ref=ref)

    def load(self, *, store: Store, device: str, ref: str) -> CachedLut:
        """Read the LUT ``ref`` of ``device`` from the database, and remember it when complete (blocking)."""
        generation = self.generation
        try:
            with store.transaction() as session:
                job = resolve_lut(session=session, device=device, ref=ref)
                if job.status != JobStatus.COMPLETE:
                    self._refs.pop((device, ref), None)
                    return CachedLut(lut_snapshot(session=session, job=job))
                # ids may be reused after a delete; completion times are not. An uploaded accuracy report
                # (the one thing of a complete LUT that changes) makes a new snapshot.
                uploaded = (job.accuracy or {}).get("uploaded_at")
                key = (job.id, job.completed_at, uploaded)
                with self._lock:
                    cached = self._luts.get(key)
                if cached is None:
                    cached = CachedLut(lut_snapshot(session=session, job=job))
        except BaseException:
            self._refs.pop((device, ref), None)
            raise
        with self._lock:
            cached = self._luts.setdefault(key, cached)
            self._luts.move_to_end(key)
            while len(self._luts) > self.size:
                self._luts.popitem(last=False)
            if generation == self.generation and self.ttl_s > 0:  # no write ended the generation meanwhile
                if len(self._refs) >= 16 * self.size:
                    self._refs.clear()
                self._refs[(device, ref)] = [self.clock() + self.ttl_s, cached, False]
            else:
                self._refs.pop((device, ref), None)
        return cached

    def token_known(self, token: str) -> bool:
        """Whether ``token`` was found to be a device token in this generation (no database)."""
        expires = self._tokens.get(hash_token(token))
        return expires is not None and expires >= self.clock()

    def check_token(self, *, store: Store, token: str) -> bool:
        """Whether ``token`` is a device token: from memory, else from the database (a blocking call)."""
        if self.token_known(token):
            return True
        generation = self.generation
        with store.transaction() as session:
            valid = device_by_token(session=session, token=token) is not None
        if valid:
            with self._lock:
                if generation == self.generation and self.ttl_s > 0:
                    if len(self._tokens) >= 16 * self.size:
                        self._tokens.clear()
                    self._tokens[hash_token(token)] = self.clock() + self.ttl_s
        return valid

    def invalidate(self) -> None:
        """End the generation: references and tokens are resolved again (snapshots stay: they never change)."""
        with self._lock:
            self.generation += 1
            self._refs.clear()
            self._tokens.clear()
