"""The agent protocol: claim work items under a lease, heartbeat, upload results, hand back, report failures.

A lease is an id and an expiry over some of a job's items; an item whose
lease expired is claimable again. Uploads and failures of one job take turns
(:func:`_lock_job`), so the one that finishes a job completes it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from searchspace import NETWORK_KEY_PREFIX, Entry, EntryKeyError, parse_key
from searchspace.fields import FieldError, check_stats
from searchspace.provenance import holds_checked_fields, job_mismatches

from ..errors import Conflict, Invalid, NotFound
from ..models import Job, JobStatus, NetworkMeasurement, WorkItem, WorkStatus, utcnow
from .accuracy import refresh_job_accuracy
from .jobs import refresh_status
from .luts import entry_row

#: The most a job's provenance may hold (JSON): uploads merge new keys into it, and no more.
MAX_PROVENANCE_BYTES = 64 * 1024

__all__ = [
    "MAX_PROVENANCE_BYTES",
    "Lease",
    "claim_items",
    "heartbeat",
    "release_items",
    "report_failure",
    "upload_results",
]


@dataclass(frozen=True)
class Lease:
    """Work items claimed together; ``lease_id`` is what heartbeats and uploads name."""

    lease_id: str
    expires_at: datetime
    items: list[WorkItem]


def _claimable(now: datetime) -> Any:
    return or_(
        WorkItem.status == WorkStatus.PENDING,
        and_(WorkItem.status == WorkStatus.LEASED, WorkItem.lease_expires_at < now),
    )


def claim_items(
    *,
    session: Session,
    job: Job,
    agent: str,
    max_items: int,
    lease_seconds: float | None = None,
    now: datetime | None = None,
    lease_id: str | None = None,
) -> Lease:
    """Lease up to ``max_items`` unclaimed (or expired) items of ``job`` to ``agent``, in id order.

    ``lease_id``, when the agent proposes one, makes the claim idempotent: if
    items of the job are still leased under it (a retried claim whose answer
    was lost), they are returned, with a renewed expiry, and nothing more is
    leased; an id that already finished items is refused (:class:`Conflict`
    naming ``lease_id``).

    A complete job may still hold validation networks to measure; a failed
    job hands out nothing. Two claims at once never get the same item:
    PostgreSQL skips rows another claim has locked; SQLite runs write
    transactions one at a time.
    """
    now = now or utcnow()
    seconds = job.lease_seconds if lease_seconds is None else lease_seconds
    expires = now + timedelta(seconds=seconds)
    if lease_id is not None:
        held = list(session.scalars(select(WorkItem).where(WorkItem.job_id == job.id, WorkItem.lease_id == lease_id)))
        if any(i.status == WorkStatus.LEASED for i in held):
            session.execute(
                update(WorkItem)
                .where(WorkItem.job_id == job.id, WorkItem.lease_id == lease_id, WorkItem.status == WorkStatus.LEASED)
                .values(lease_expires_at=expires, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            items = list(
                session.scalars(
                    select(WorkItem)
                    .where(
                        WorkItem.job_id == job.id, WorkItem.lease_id == lease_id, WorkItem.status == WorkStatus.LEASED
                    )
                    .order_by(WorkItem.id)
                    .execution_options(populate_existing=True)
                )
            )
            return Lease(lease_id, expires, items)
        if held:
            raise Conflict("lease_id", "this lease id was used before; propose a new one for a new claim")
    lease_id = lease_id or secrets.token_hex(16)
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return Lease(lease_id, expires, [])
    ids = list(
        session.scalars(
            select(WorkItem.id)
            .where(WorkItem.job_id == job.id, _claimable(now))
            .order_by(WorkItem.id)
            .limit(max_items)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(
            update(WorkItem)
            .where(WorkItem.id.in_(ids), _claimable(now))
            .values(
                status=WorkStatus.LEASED, lease_id=lease_id, leased_by=agent, lease_expires_at=expires, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        if job.status == JobStatus.PENDING:
            job.status = JobStatus.RUNNING
    items = list(
        session.scalars(
            select(WorkItem).where(WorkItem.job_id == job.id, WorkItem.lease_id == lease_id).order_by(WorkItem.id)
        )
    )
    return Lease(lease_id, expires, items)


def heartbeat(
    *, session: Session, job: Job, lease_id: str, lease_seconds: float | None = None, now: datetime | None = None
) -> tuple[int, datetime]:
    """Extend a lease; returns how many items it still holds and the new expiry."""
    now = now or utcnow()
    expires = now + timedelta(seconds=job.lease_seconds if lease_seconds is None else lease_seconds)
    result = session.execute(
        update(WorkItem)
        .where(WorkItem.job_id == job.id, WorkItem.lease_id == lease_id, WorkItem.status == WorkStatus.LEASED)
        .values(lease_expires_at=expires, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        raise NotFound("lease_id", "no items held under this lease (unknown, finished, or expired and reclaimed)")
    return result.rowcount, expires


def _lock_job(*, session: Session, job: Job) -> None:
    """Hold the job's row until the transaction ends (PostgreSQL; SQLite runs one writer at a time).

    Uploads and failures of one job then take turns: each counts the items
    the other committed, so the one that finishes the entries (or the
    validation networks) sees it and completes the job (computes its report).
    """
    session.execute(
        select(Job).where(Job.id == job.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()


def _find_item(*, session: Session, job: Job, item_id: int | None, key: str | None, where: str) -> WorkItem:
    if item_id is not None:
        item = session.get(WorkItem, item_id)
        if item is None or item.job_id != job.id:
            raise NotFound(f"{where}.item_id", f"no work item {item_id} in job {job.id}")
        return item
    if key is None:
        raise Invalid(where, "give item_id or key")
    if key.startswith(NETWORK_KEY_PREFIX):  # a validation network: its key as the claim gave it
        canonical = key
    else:
        try:
            canonical = parse_key(key).key
        except EntryKeyError as exc:
            raise Invalid(f"{where}.key", str(exc)) from None
    item = session.scalar(select(WorkItem).where(WorkItem.job_id == job.id, WorkItem.key == canonical))
    if item is None:
        raise NotFound(f"{where}.key", f"{canonical} is no work item of job {job.id}")
    return item


def upload_results(
    *,
    session: Session,
    job: Job,
    lease_id: str,
    results: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, Any] | None = None,
    overhead_us: float | None = None,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Store measured results of leased items; returns ``(accepted, duplicates)``.

    Each result is ``{"item_id" | "key", "stats": {"median": µs, ...}}``. An
    item already done under this lease counts as a duplicate and is left as it
    is, so a retried upload changes nothing; one done under another lease is a
    :class:`Conflict`, and an upload of no results under a lease id that holds
    no item of the job is :class:`NotFound` (``lease_id``). An entry's result becomes a LUT entry; a
    validation network's a :class:`NetworkMeasurement` (``stats["source"] ==
    "job"``). When the upload leaves the job's entries complete and its
    validation networks all measured, the LUT's accuracy report is computed
    (:func:`refresh_job_accuracy`).

    ``provenance`` says how the results were measured; the job keeps the
    first it was given (keys added later are merged in, by uploads that store
    results only, up to :data:`MAX_PROVENANCE_BYTES`), except ``calm``: an
    agent's calm-gate totals grow with each batch, so the newest is kept. Once it holds the
    checked fields (:data:`searchspace.provenance.CHECKED_FIELDS`), an
    upload whose checked fields differ (less what identical devices differ
    in, :func:`searchspace.provenance.job_mismatches`) is refused whole: a
    :class:`Conflict` on ``provenance`` whose message names each field
    (``provenance.runtime.threads: 1 != 2``); nothing of it is stored.
    """
    now = now or utcnow()
    _lock_job(session=session, job=job)
    if provenance and holds_checked_fields(job.provenance):
        diff = job_mismatches(job.provenance, provenance)
        if diff:
            raise Conflict(
                "provenance",
                "measured differently from the job's earlier results (a LUT never mixes settings): "
                + "; ".join(f"provenance.{d}" for d in diff),
            )
    if not results and session.scalar(_lease_items(job, lease_id).limit(1)) is None:
        raise NotFound("lease_id", "no items were ever leased under this lease id in this job")
    was_complete = job.status == JobStatus.COMPLETE
    accepted = duplicates = networks = 0
    for i, result in enumerate(results):
        where = f"results[{i}]"
        item = _find_item(session=session, job=job, item_id=result.get("item_id"), key=result.get("key"), where=where)
        if item.status == WorkStatus.DONE and item.lease_id == lease_id:
            duplicates += 1  # a retried upload: its result is stored once
            continue
        if item.status != WorkStatus.LEASED or item.lease_id != lease_id:
            raise Conflict(f"{where}.item_id", f"work item {item.id} is not leased under this lease_id")
        try:
            stats = check_stats(result.get("stats") or {}, f"{where}.stats")
        except FieldError as exc:
            raise Invalid(exc.where, exc.message) from None
        if item.kind == "network":
            session.add(_network_row(job_id=job.id, item=item, stats=stats))
            networks += 1
        else:
            entry = Entry(**item.fields)
            session.add(
                entry_row(
                    job_id=job.id,
                    key=entry.key,
                    entry=entry,
                    latency_us=float(stats["median"]),
                    stats=stats,
                    work_item_id=item.id,
                )
            )
        item.status = WorkStatus.DONE
        item.lease_expires_at = None
        item.updated_at = now
        accepted += 1
    if provenance and accepted:  # only results bring their provenance: nothing else grows the job
        merged = {**dict(provenance), **job.provenance}
        if "calm" in provenance:  # an agent's calm-gate totals grow with each batch: the newest record is kept
            merged["calm"] = provenance["calm"]
        if len(json.dumps(merged)) > MAX_PROVENANCE_BYTES:
            raise Invalid("provenance", f"the job's provenance would exceed {MAX_PROVENANCE_BYTES} bytes")
        job.provenance = merged
    if overhead_us is not None and job.overhead_us is None:
        job.overhead_us = overhead_us
    session.flush()
    refresh_status(session=session, job=job, now=now)
    if networks or (job.status == JobStatus.COMPLETE and not was_complete):
        refresh_job_accuracy(session=session, job=job, now=now)
    return accepted, duplicates


def _lease_items(job: Job, lease_id: str) -> Any:
    """The ids of ``job``'s items leased under ``lease_id`` (held, or done under it)."""
    return select(WorkItem.id).where(WorkItem.job_id == job.id, WorkItem.lease_id == lease_id)


def _network_row(*, job_id: int, item: WorkItem, stats: Mapping[str, Any]) -> NetworkMeasurement:
    """A validation network measured by the job's agent: kept apart from uploaded reports' rows."""
    arch = str(item.fields["arch"])
    artifact = stats.get("artifact")
    return NetworkMeasurement(
        job_id=job_id,
        arch=arch,
        latency_us=float(stats["median"]),
        predicted_us=None,
        stats={
            "source": "job",
            "item_id": item.id,
            "index": item.fields.get("index"),
            "seed": item.fields.get("seed"),
            "named": bool(item.fields.get("named")),
            "network": {
                "arch": arch,
                "artifact": artifact if isinstance(artifact, str) else None,
                "stats": dict(stats),
                "sentinel": None,
            },
        },
    )


def release_items(
    *, session: Session, job: Job, lease_id: str, item_ids: Sequence[int] | None = None, now: datetime | None = None
) -> int:
    """Hand back items leased under ``lease_id`` (all, or ``item_ids``) unmeasured; returns how many.

    They are claimable again at once and no attempt is counted (an agent that
    stops early, or one restarted after a crash, hands back what it did not measure).
    """
    now = now or utcnow()
    query = (
        update(WorkItem)
        .where(WorkItem.job_id == job.id, WorkItem.lease_id == lease_id, WorkItem.status == WorkStatus.LEASED)
        .values(status=WorkStatus.PENDING, lease_id=None, leased_by=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if item_ids is not None:
        query = query.where(WorkItem.id.in_(list(item_ids)))
    released = session.execute(query).rowcount
    session.flush()
    return released


def report_failure(
    *, session: Session, job: Job, lease_id: str, item_id: int, error: str, now: datetime | None = None
) -> WorkItem:
    """Record a failed attempt: the item is claimable again until ``job.max_attempts``, then failed.

    A validation network that fails for good leaves the report to the others.
    """
    now = now or utcnow()
    _lock_job(session=session, job=job)
    item = _find_item(session=session, job=job, item_id=item_id, key=None, where="body")
    if item.status != WorkStatus.LEASED or item.lease_id != lease_id:
        raise Conflict("item_id", f"work item {item.id} is not leased under this lease_id")
    item.attempts += 1
    item.last_error = error[:4000]
    item.status = WorkStatus.FAILED if item.attempts >= job.max_attempts else WorkStatus.PENDING
    item.lease_id = item.leased_by = item.lease_expires_at = None
    item.updated_at = now
    session.flush()
    refresh_status(session=session, job=job, now=now)
    if item.kind == "network" and item.status == WorkStatus.FAILED:
        refresh_job_accuracy(session=session, job=job, now=now)
    return item
