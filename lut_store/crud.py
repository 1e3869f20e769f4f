"""Everything the server (and the CLI) does to the database: keyword-only, typed functions.

Each function works inside the caller's session and transaction and never
commits; a caller runs one transaction per request. Errors are
:class:`StoreError` subclasses naming the field at fault.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from searchspace import (
    DEFAULT_NETWORKS,
    NETWORK_KEY_PREFIX,
    ArchitectureError,
    Entry,
    EntryKeyError,
    SpaceSpec,
    network_item_key,
    parse_key,
    validation_archs,
)

from .formats import FormatError, Table, TableRow, check_latency
from .models import (
    Device,
    DeviceToken,
    Job,
    JobStatus,
    LutEntry,
    NetworkMeasurement,
    Space,
    WorkItem,
    WorkStatus,
    utcnow,
)

__all__ = [
    "LUTS_CHANGED",
    "MAX_VALIDATION_NETWORKS",
    "Conflict",
    "Invalid",
    "Lease",
    "LutSnapshot",
    "NotFound",
    "StoreError",
    "accuracy_summary",
    "add_validation",
    "architecture_latency",
    "claim_items",
    "compare_luts",
    "create_device",
    "create_job",
    "delete_device",
    "device_by_token",
    "get_accuracy",
    "get_device",
    "get_job",
    "get_or_create_space",
    "hash_token",
    "heartbeat",
    "import_table",
    "interleave",
    "issue_token",
    "job_progress",
    "list_devices",
    "list_jobs",
    "lut_snapshot",
    "mark_luts_changed",
    "refresh_job_accuracy",
    "release_items",
    "report_failure",
    "resolve_lut",
    "set_accuracy",
    "snapshot_table",
    "upload_results",
    "validation_progress",
]


#: ``session.info`` key that a write sets when it changes what a complete LUT serves or which LUT
#: ``latest`` names (a job completed, a LUT imported, an accuracy report stored, a device deleted);
#: the server ends its LUT cache's generation on commit.
LUTS_CHANGED = "hwlut_luts_changed"


def mark_luts_changed(session: Session) -> None:
    """Say that this write changes a LUT's answers or which LUTs exist (see :data:`LUTS_CHANGED`)."""
    session.info[LUTS_CHANGED] = True


class StoreError(Exception):
    """A request the store refuses; ``field`` names what is wrong."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(StoreError):
    """The thing named by ``field`` does not exist."""

    status = 404


class Conflict(StoreError):
    """The request contradicts the database's state (a name taken, an item not leased to you)."""

    status = 409


class Invalid(StoreError):
    """A value that cannot be stored (an impossible entry, a NaN latency)."""

    status = 422


# -- devices and tokens ---------------------------------------------------------
TOKEN_PREFIX = "hwlut_"


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_device(
    *,
    session: Session,
    name: str,
    description: str = "",
    hardware: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> tuple[Device, str]:
    """Register a device; returns it and its first token (the only time the token is seen)."""
    if session.scalar(select(Device.id).where(Device.name == name)) is not None:
        raise Conflict("name", f"a device named {name!r} exists")
    device = Device(name=name, description=description, hardware=dict(hardware or {}), runtime=dict(runtime or {}))
    session.add(device)
    session.flush()
    return device, issue_token(session=session, device=device)


def issue_token(*, session: Session, device: Device) -> str:
    """A new bearer token for ``device``; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(DeviceToken(device_id=device.id, token_hash=hash_token(token), hint=token[:10]))
    session.flush()
    return token


def device_by_token(*, session: Session, token: str) -> Device | None:
    """The device a token belongs to, or ``None``."""
    digest = hash_token(token)
    row = session.execute(
        select(DeviceToken.token_hash, Device).join(Device).where(DeviceToken.token_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    return row[1]


def get_device(*, session: Session, name: str) -> Device:
    """The device named ``name``, or :class:`NotFound`."""
    device = session.scalar(select(Device).where(Device.name == name))
    if device is None:
        raise NotFound("device", f"no device named {name!r}")
    return device


def list_devices(*, session: Session) -> list[Device]:
    """Every device, by name."""
    return list(session.scalars(select(Device).order_by(Device.name)))


def delete_device(*, session: Session, name: str) -> None:
    """Delete a device with its tokens, jobs and LUTs."""
    device = get_device(session=session, name=name)
    session.execute(delete(Device).where(Device.id == device.id))
    session.expunge(device)
    mark_luts_changed(session)


# -- spaces and jobs ----------------------------------------------------------------
def get_or_create_space(*, session: Session, spec: SpaceSpec) -> Space:
    """The stored row of ``spec`` (one per spec hash)."""
    digest = spec.spec_hash
    space = session.scalar(select(Space).where(Space.spec_hash == digest))
    if space is None:
        space = Space(name=spec.name, spec_hash=digest, spec=spec.to_dict())
        session.add(space)
        session.flush()
    return space


#: The most validation networks one request may add to a job.
MAX_VALIDATION_NETWORKS = 1000
#: The largest seed of a validation draw (the fit/held-out split needs a non-negative 32-bit seed).
MAX_VALIDATION_SEED = 2**32 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validation_networks(spec: SpaceSpec, *, n: Any, seed: Any, archs: Any, where: str) -> tuple[list[str], int]:
    """The plan's networks (named first, then ``n`` drawn with ``seed``) and how many were named.

    Errors are :class:`Invalid` naming ``{where}n``, ``{where}seed`` or ``{where}archs[i]``.
    """
    if not _is_int(n) or not 0 <= n <= MAX_VALIDATION_NETWORKS:
        raise Invalid(f"{where}n", f"expected an integer from 0 to {MAX_VALIDATION_NETWORKS}, got {n!r}")
    if not _is_int(seed) or not 0 <= seed <= MAX_VALIDATION_SEED:
        raise Invalid(f"{where}seed", f"expected an integer from 0 to {MAX_VALIDATION_SEED}, got {seed!r}")
    if isinstance(archs, str) or not isinstance(archs, Sequence):
        raise Invalid(f"{where}archs", "expected a list of architectures")
    if len(archs) > MAX_VALIDATION_NETWORKS:
        raise Invalid(f"{where}archs", f"at most {MAX_VALIDATION_NETWORKS} named networks")
    named: list[str] = []
    for i, arch in enumerate(archs):
        if not isinstance(arch, str):
            raise Invalid(f"{where}archs[{i}]", "expected an architecture string (candidates joined by commas)")
        try:
            named.append(spec.decode(arch).encode())
        except ArchitectureError as exc:
            raise Invalid(f"{where}archs[{i}]", str(exc)) from None
    named = list(dict.fromkeys(named))
    return validation_archs(spec, n, seed, named), len(named)


def _network_rows(
    job_id: int, archs: Sequence[str], named: int, *, seed: int, first_index: int, now: datetime
) -> list[dict[str, Any]]:
    """Work-item rows of validation networks (kind ``network``), numbered from ``first_index``."""
    return [
        {
            "job_id": job_id,
            "kind": "network",
            "key": network_item_key(arch),
            "fields": {"arch": arch, "index": first_index + i, "seed": seed, "named": i < named},
            "status": WorkStatus.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for i, arch in enumerate(archs)
    ]


def interleave(entries: Sequence[Any], networks: Sequence[Any]) -> list[Any]:
    """``entries`` with ``networks`` spread evenly among them (network *j* after ``(j+1)·E/(N+1)`` entries).

    Claims take items in id order, so every claimed batch of an interleaved job
    holds entries and networks alike, measured in the same passes.
    """
    out: list[Any] = []
    e, n = len(entries), len(networks)
    j = 0
    for i in range(e + 1):
        while j < n and (j + 1) * e // (n + 1) <= i:
            out.append(networks[j])
            j += 1
        if i < e:
            out.append(entries[i])
    return out


def create_job(
    *,
    session: Session,
    device: Device,
    spec: SpaceSpec,
    runtime: str,
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
    lease_seconds: float = 300.0,
    max_attempts: int = 3,
    entries: Sequence[str] | None = None,
    validation: Mapping[str, Any] | None = None,
) -> Job:
    """A profiling job whose work items are the distinct entries of ``spec`` (or only ``entries``, keys).

    A restricted job records its canonical keys in ``options["entries"]``.

    ``validation`` (``{"n": int, "seed": int, "archs": [str]}``; ``n``
    defaults to :data:`searchspace.DEFAULT_NETWORKS`, ``seed`` to 0) adds
    validation networks: the named ``archs`` and ``n`` architectures drawn
    with ``seed`` (:func:`searchspace.validation_archs`), as work items of
    kind ``network`` spread evenly among the entries in id order. A
    restricted job also measures every entry its networks need (their LUT
    sums must be complete). Errors name ``validation.n``, ``validation.seed``,
    ``validation.archs[i]``; nothing is written then.
    """
    wanted = spec.distinct_entries()
    chosen: dict[str, Entry] | None = None
    if entries is not None:
        by_key = {e.key: e for e in wanted}
        chosen = {}
        for i, key in enumerate(entries):
            try:
                canonical = parse_key(key).key
            except EntryKeyError as exc:
                raise Invalid(f"entries[{i}]", str(exc)) from None
            if canonical not in by_key:
                raise Invalid(f"entries[{i}]", f"{canonical} is no distinct entry of space {spec.name!r}")
            chosen[canonical] = by_key[canonical]
    networks: list[str] = []
    named = 0
    plan: dict[str, Any] | None = None
    if validation is not None:
        given = dict(validation)
        for name in given:
            if name not in ("n", "seed", "archs"):
                raise Invalid(f"validation.{name}", "unknown field (known: n, seed, archs)")
        n, seed = given.get("n", DEFAULT_NETWORKS), given.get("seed", 0)
        networks, named = _validation_networks(
            spec, n=n, seed=seed, archs=given.get("archs") or [], where="validation."
        )
        if networks:
            plan = {"n": n, "seed": seed, "archs": networks[:named], "networks": len(networks)}
    if chosen is not None:
        for arch in networks:  # a network's LUT sum needs every one of its entries
            for entry in spec.entries_of(arch):
                chosen.setdefault(entry.key, entry)
        wanted = list(chosen.values())
        options = {**dict(options or {}), "entries": list(chosen)}
    if plan is not None:
        options = {**dict(options or {}), "validation": [plan]}
    space = get_or_create_space(session=session, spec=spec)
    job = Job(
        device_id=device.id,
        space_id=space.id,
        kind="profile",
        status=JobStatus.PENDING,
        resolution=spec.resolution,
        runtime=runtime,
        threads=threads,
        options=dict(options or {}),
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
    )
    session.add(job)
    session.flush()
    now = utcnow()
    entry_rows = [
        {
            "job_id": job.id,
            "kind": "entry",
            "key": e.key,
            "fields": e.fields(),
            "status": WorkStatus.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for e in wanted
    ]
    seed = plan["seed"] if plan else 0
    network_rows = _network_rows(job.id, networks, named, seed=seed, first_index=0, now=now)
    session.execute(insert(WorkItem), interleave(entry_rows, network_rows))  # ids follow this order
    return job


def add_validation(
    *, session: Session, job: Job, n: int = DEFAULT_NETWORKS, seed: int = 0, archs: Sequence[str] = ()
) -> tuple[list[str], int]:
    """Add validation networks to a profiling job (finished or not); returns ``(networks, added)``.

    ``networks`` are the plan's architectures (``archs`` named, then ``n``
    drawn with ``seed``); those the job has already are not added again.
    The job's status, completion time and LUT stay as they are. When nothing
    is new and the job's networks are all measured, the accuracy report is
    (re)computed from them at once. Raises :class:`Invalid` naming ``n``,
    ``seed`` or ``archs[i]``, :class:`Conflict` naming ``lut`` for an imported
    LUT (no agent measures it) or a failed job (its sums are incomplete), and
    ``archs[i]`` / ``n`` for networks whose entries a restricted job does not
    measure.
    """
    if job.kind != "profile" or job.space is None:
        raise Conflict(
            "lut",
            f"LUT {job.id} is an imported table: no agent measures its device's networks here; "
            "validate it where it runs (hwlut validate --lut FILE, or --here)",
        )
    if job.status == JobStatus.FAILED:
        raise Conflict("lut", f"job {job.id} failed (entries failed for good): its LUT sums are incomplete")
    spec = SpaceSpec.from_dict(job.space.spec)
    networks, named = _validation_networks(spec, n=n, seed=seed, archs=archs, where="")
    if not networks:
        raise Invalid("n", "no networks to validate with: give n >= 1 or name archs")
    have = set(session.scalars(select(WorkItem.key).where(WorkItem.job_id == job.id, WorkItem.kind == "entry")))
    for i, arch in enumerate(networks):
        missing = [e.key for e in spec.entries_of(arch) if e.key not in have]
        if not missing:
            continue
        what = f"LUT {job.id} does not measure {len(set(missing))} entries of this network (e.g. {missing[0]})"
        if i < named:
            raise Conflict(f"archs[{i}]", what + "; name networks whose entries the job has")
        raise Conflict(
            "n",
            f"a drawn network needs entries LUT {job.id} does not measure (a job restricted to some entries; "
            f"e.g. {missing[0]}); name networks whose entries it has (archs) with n=0",
        )
    existing = set(session.scalars(select(WorkItem.key).where(WorkItem.job_id == job.id, WorkItem.kind == "network")))
    new = [(i, arch) for i, arch in enumerate(networks) if network_item_key(arch) not in existing]
    now = utcnow()
    if new:
        first = len(existing)
        rows = _network_rows(job.id, [a for _, a in new], 0, seed=seed, first_index=first, now=now)
        for (i, _), row in zip(new, rows, strict=True):
            row["fields"]["named"] = i < named
        session.execute(insert(WorkItem), rows)
        plan = {"n": n, "seed": seed, "archs": networks[:named], "networks": len(networks), "added": len(new)}
        rounds = job.options.get("validation")
        job.options = {**job.options, "validation": [*(rounds if isinstance(rounds, list) else []), plan]}
        session.flush()
    elif (job.accuracy or {}).get("source") != "job":
        refresh_job_accuracy(session=session, job=job, now=now)
    return networks, len(new)


def get_job(*, session: Session, job_id: int, device: Device | None = None) -> Job:
    """A job by id (of ``device`` when given), or :class:`NotFound`."""
    job = session.get(Job, job_id)
    if job is None or (device is not None and job.device_id != device.id):
        raise NotFound("job_id", f"no job {job_id}" + (f" of device {device.name!r}" if device else ""))
    return job


def list_jobs(*, session: Session, device: Device | None = None) -> list[Job]:
    """Jobs (of one device), newest first."""
    query = select(Job).order_by(Job.id.desc())
    if device is not None:
        query = query.where(Job.device_id == device.id)
    return list(session.scalars(query))


def _progress(*, session: Session, job: Job, kind: str) -> dict[str, int]:
    counts = {s: 0 for s in (WorkStatus.PENDING, WorkStatus.LEASED, WorkStatus.DONE, WorkStatus.FAILED)}
    rows = session.execute(
        select(WorkItem.status, func.count())
        .where(WorkItem.job_id == job.id, WorkItem.kind == kind)
        .group_by(WorkItem.status)
    )
    for status, count in rows:
        counts[status] = count
    counts["total"] = sum(counts.values())
    return counts


def job_progress(*, session: Session, job: Job) -> dict[str, int]:
    """The job's *entry* items counted by status (every status present, ``total`` too).

    Validation networks are counted apart (:func:`validation_progress`): a
    job's status and its LUT depend on its entries only.
    """
    return _progress(session=session, job=job, kind="entry")


def validation_progress(*, session: Session, job: Job) -> dict[str, int]:
    """The job's validation networks (items of kind ``network``) counted by status."""
    return _progress(session=session, job=job, kind="network")


def _refresh_status(*, session: Session, job: Job, now: datetime) -> None:
    """The job's status from its entry items; ``completed_at`` is set once, when it finishes."""
    progress = job_progress(session=session, job=job)
    if progress[WorkStatus.PENDING] or progress[WorkStatus.LEASED]:
        if progress[WorkStatus.DONE] or progress[WorkStatus.LEASED] or progress[WorkStatus.FAILED]:
            job.status = JobStatus.RUNNING
        return
    finished = JobStatus.FAILED if progress[WorkStatus.FAILED] else JobStatus.COMPLETE
    if job.status != finished or job.completed_at is None:
        job.status = finished
        job.completed_at = now
        mark_luts_changed(session)


# -- the agent protocol ------------------------------------------------------------------
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
    if job.status == JobStatus.FAILED:
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
    item already done counts as a duplicate and is left as it is, so a retried
    upload changes nothing. An entry's result becomes a LUT entry; a
    validation network's a :class:`NetworkMeasurement` (``stats["source"] ==
    "job"``). When the upload leaves the job's entries complete and its
    validation networks all measured, the LUT's accuracy report is computed
    (:func:`refresh_job_accuracy`).
    """
    now = now or utcnow()
    _lock_job(session=session, job=job)
    was_complete = job.status == JobStatus.COMPLETE
    accepted = duplicates = networks = 0
    for i, result in enumerate(results):
        where = f"results[{i}]"
        item = _find_item(session=session, job=job, item_id=result.get("item_id"), key=result.get("key"), where=where)
        if item.status == WorkStatus.DONE:
            duplicates += 1
            continue
        if item.status != WorkStatus.LEASED or item.lease_id != lease_id:
            raise Conflict(f"{where}.item_id", f"work item {item.id} is not leased under this lease_id")
        stats = dict(result.get("stats") or {})
        for name, value in stats.items():
            if name in ("median", "mean", "std", "min", "max", "p10", "p90", "ci_low", "ci_high"):
                try:
                    check_latency(value, f"{where}.stats.{name}")
                except FormatError as exc:
                    raise Invalid(f"{where}.stats.{name}", str(exc).split(": ", 1)[1]) from None
        if "median" not in stats:
            raise Invalid(f"{where}.stats.median", "required (µs)")
        if item.kind == "network":
            session.add(_network_row(job_id=job.id, item=item, stats=stats))
            networks += 1
        else:
            entry = Entry(**item.fields)
            session.add(
                _entry_row(
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
    if provenance:
        job.provenance = {**dict(provenance), **job.provenance}
    if overhead_us is not None and job.overhead_us is None:
        job.overhead_us = overhead_us
    session.flush()
    _refresh_status(session=session, job=job, now=now)
    if networks or (job.status == JobStatus.COMPLETE and not was_complete):
        refresh_job_accuracy(session=session, job=job, now=now)
    return accepted, duplicates


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
    _refresh_status(session=session, job=job, now=now)
    if item.kind == "network" and item.status == WorkStatus.FAILED:
        refresh_job_accuracy(session=session, job=job, now=now)
    return item


# -- LUTs ----------------------------------------------------------------------------
def _entry_row(
    *,
    job_id: int,
    key: str,
    entry: Entry | None,
    latency_us: float,
    stats: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
    work_item_id: int | None = None,
) -> LutEntry:
    fields = entry.fields() if entry else {}
    return LutEntry(
        job_id=job_id,
        key=key,
        entry_key=entry.key if entry else None,
        latency_us=latency_us,
        stats=dict(stats),
        source=dict(source) if source is not None else None,
        work_item_id=work_item_id,
        **fields,
    )


def import_table(*, session: Session, device: Device, table: Table, space: SpaceSpec | None = None) -> Job:
    """Store a table read from a file as a complete LUT (an import job) of ``device``."""
    space = space or table.space
    seen: dict[str, str] = {}
    for row in table.rows:
        if row.entry is not None:
            if row.entry.key in seen:
                raise Invalid("entries", f"{row.key!r} and {seen[row.entry.key]!r} are the same entry {row.entry.key}")
            seen[row.entry.key] = row.key
    space_row = get_or_create_space(session=session, spec=space) if space else None
    now = utcnow()
    job = Job(
        device_id=device.id,
        space_id=space_row.id if space_row else None,
        kind="import",
        status=JobStatus.COMPLETE,
        resolution=space.resolution if space else None,
        runtime=str((table.device or {}).get("runtime", "")) if isinstance(table.device, Mapping) else "",
        source_format=table.format,
        provenance={**table.provenance, **({"device": table.device} if table.device else {})},
        overhead_us=table.overhead_us,
        completed_at=now,
    )
    session.add(job)
    session.flush()
    for row in table.rows:
        session.add(
            _entry_row(
                job_id=job.id,
                key=row.key,
                entry=row.entry,
                latency_us=row.latency_us,
                stats=row.stats,
                source=row.source,
            )
        )
    session.flush()
    mark_luts_changed(session)
    return job


def resolve_lut(*, session: Session, device: str, ref: str | int) -> Job:
    """The LUT ``ref`` of a device: a job id, or ``latest`` (the newest complete LUT)."""
    dev = get_device(session=session, name=device)
    if ref == "latest":
        job = session.scalar(
            select(Job)
            .where(Job.device_id == dev.id, Job.status == JobStatus.COMPLETE)
            .order_by(Job.completed_at.desc(), Job.id.desc())
            .limit(1)
        )
        if job is None:
            raise NotFound("lut", f"device {device!r} has no complete LUT yet")
        return job
    try:
        job_id = int(ref)
    except ValueError:
        raise Invalid("lut", f"expected a job id or 'latest', got {ref!r}") from None
    if not 0 < job_id < 2**31:  # no row has such an id (and the database could not even compare it)
        raise NotFound("lut", f"no job {job_id} of device {device!r}")
    return get_job(session=session, job_id=job_id, device=dev)


@dataclass
class LutSnapshot:
    """A LUT's entries in memory, indexed by original key and by canonical key (µs)."""

    job_id: int
    device: str
    status: str
    complete: bool
    space: SpaceSpec | None
    source_format: str | None
    provenance: dict[str, Any]
    overhead_us: float | None
    rows: list[TableRow]
    accuracy: dict[str, Any] | None = None
    by_key: dict[str, TableRow] = field(default_factory=dict)
    by_entry: dict[str, TableRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows:
            self.by_key[row.key] = row
            if row.entry is not None:
                self.by_entry[row.entry.key] = row

    def find(self, key: str) -> TableRow | None:
        """The row of ``key``: as the source wrote it, or in any hwlut rendering.

        Raises :class:`Invalid` when ``key`` is neither stored nor parseable.
        """
        row = self.by_key.get(key)
        if row is not None:
            return row
        try:
            canonical = parse_key(key).key
        except EntryKeyError as exc:
            raise Invalid("key", str(exc)) from None
        return self.by_entry.get(canonical)

    def latency(self, entry: Entry) -> float | None:
        """The latency (µs) of an entry, ``None`` if the LUT lacks it."""
        row = self.by_entry.get(entry.key)
        return None if row is None else row.latency_us


def lut_snapshot(*, session: Session, job: Job) -> LutSnapshot:
    """Load a LUT's entries (a complete LUT never changes: callers may cache the result)."""
    rows = []
    for r in session.scalars(select(LutEntry).where(LutEntry.job_id == job.id).order_by(LutEntry.id)):
        entry = None
        if r.entry_key is not None:
            entry = Entry(r.op, r.cin, r.cout, r.h, r.w, r.stride, r.kernel, r.expansion, r.groups)  # type: ignore[arg-type]
        rows.append(TableRow(r.key, entry, r.latency_us, r.stats, r.source))
    return LutSnapshot(
        job_id=job.id,
        device=job.device.name,
        status=job.status,
        complete=job.status == JobStatus.COMPLETE,
        space=SpaceSpec.from_dict(job.space.spec) if job.space else None,
        source_format=job.source_format,
        provenance=dict(job.provenance),
        overhead_us=job.overhead_us,
        rows=rows,
        accuracy=job.accuracy,
    )


def _accuracy_provenance(accuracy: Mapping[str, Any] | None) -> dict[str, Any]:
    """An uploaded validation as a LUT file carries it (``provenance.accuracy`` and ``.calibration``).

    The records :func:`profiler.validate.write_calibration` writes; empty without an upload.
    """
    if not accuracy:
        return {}
    report = accuracy.get("report") or {}
    summary = {k: report.get(k) for k in ("networks", "raw", "raw_held_out", "overhead", "calibrated", "calibration")}
    out: dict[str, Any] = {
        "accuracy": {
            **summary,
            "held_out": report.get("held_out"),
            "plan": accuracy.get("plan") or {},
            "measured_at": accuracy.get("finished_at"),
        },
    }
    if isinstance(report.get("calibration"), dict):
        out["calibration"] = {**report["calibration"], "fitted_at": accuracy.get("finished_at")}
    return out


def snapshot_table(snapshot: LutSnapshot) -> Table:
    """A snapshot as a :class:`Table`, ready for :func:`lut_store.formats.write_table`."""
    provenance = dict(snapshot.provenance)
    device = provenance.pop("device", None) or {"name": snapshot.device}
    if snapshot.accuracy:  # an uploaded validation replaces the file's own (a calibration without evidence goes)
        provenance.pop("calibration", None)
        provenance.update(_accuracy_provenance(snapshot.accuracy))
    return Table(
        snapshot.source_format or "hwlut",
        list(snapshot.rows),
        space=snapshot.space,
        device=device,
        provenance=provenance,
        overhead_us=snapshot.overhead_us,
        complete=snapshot.complete,
    )


def _job_measured(m: NetworkMeasurement) -> bool:
    return isinstance(m.stats, dict) and m.stats.get("source") == "job"


def set_accuracy(*, session: Session, job: Job, document: Mapping[str, Any], source: str = "upload") -> dict[str, Any]:
    """Store a LUT's validation (replacing any earlier one); returns it as :func:`get_accuracy` will.

    ``document`` is :meth:`profiler.validate.ValidationResult.to_dict`'s shape:
    ``report.rows`` (one per network) and ``networks`` (their measurements)
    become :class:`NetworkMeasurement` rows; the rest is ``jobs.accuracy``.
    ``source`` says where it came from: ``upload`` (measured elsewhere and
    uploaded) or ``job`` (computed by :func:`refresh_job_accuracy` from the
    networks the job's agents measured, whose rows are kept and carry the
    report's rows). Rows the job's agents measured always survive.
    """
    if source not in ("upload", "job"):
        raise ValueError(f"source: expected upload or job, got {source!r}")
    doc = json.loads(json.dumps(dict(document)))
    report = dict(doc.get("report") or {})
    rows = list(report.pop("rows", []))
    networks = {n.get("arch"): n for n in doc.pop("networks", []) or [] if isinstance(n, dict)}
    measured = session.scalars(select(NetworkMeasurement).where(NetworkMeasurement.job_id == job.id)).all()
    of_job = {m.arch: m for m in measured if _job_measured(m)}
    for m in measured:
        if not _job_measured(m):
            session.delete(m)
    if source == "job":
        in_report: set[str] = set()
        for index, row in enumerate(rows):
            m = of_job[row["arch"]]
            m.stats = {**m.stats, "report_index": index, "row": row}
            m.predicted_us = float(row["raw_us"])
            in_report.add(row["arch"])
        for arch, m in of_job.items():
            if arch not in in_report:
                m.stats = {k: v for k, v in m.stats.items() if k not in ("report_index", "row")}
                m.predicted_us = None
    else:
        for index, row in enumerate(rows):
            network = networks.get(row["arch"])
            session.add(
                NetworkMeasurement(
                    job_id=job.id,
                    arch=row["arch"],
                    latency_us=float(row["measured_us"]),
                    predicted_us=float(row["raw_us"]),
                    stats={"index": index, "row": row, "network": network},
                )
            )
    job.accuracy = {**doc, "report": report, "source": source, "uploaded_at": utcnow().isoformat()}
    mark_luts_changed(session)
    session.flush()
    return get_accuracy(session=session, job=job)


def get_accuracy(*, session: Session, job: Job) -> dict[str, Any]:
    """A LUT's stored validation (``report.rows`` and ``networks`` rebuilt from its network rows).

    Raises :class:`NotFound` when none was uploaded or computed.
    """
    if job.accuracy is None:
        raise NotFound(
            "lut",
            f"LUT {job.id} of {job.device.name!r} has no accuracy report yet "
            "(hwlut validate --device NAME, or a job with validation networks)",
        )
    measured = session.scalars(
        select(NetworkMeasurement).where(NetworkMeasurement.job_id == job.id).order_by(NetworkMeasurement.id)
    ).all()
    doc = dict(job.accuracy)
    if doc.get("source") == "job":
        chosen = sorted(
            (m for m in measured if _job_measured(m) and isinstance(m.stats.get("row"), dict)),
            key=lambda m: m.stats.get("report_index", 0),
        )
    else:
        chosen = [m for m in measured if not _job_measured(m)]
    rows = [
        m.stats.get("row") or {"arch": m.arch, "measured_us": m.latency_us, "raw_us": m.predicted_us} for m in chosen
    ]
    networks = [m.stats["network"] for m in chosen if isinstance(m.stats.get("network"), dict)]
    return {
        **doc,
        "source": doc.get("source", "upload"),
        "lut": job.id,
        "report": {**doc.get("report", {}), "rows": rows},
        "networks": networks,
    }


def refresh_job_accuracy(*, session: Session, job: Job, now: datetime | None = None) -> dict[str, Any] | None:
    """Compute and store the LUT's accuracy from the validation networks its agents measured, when it can.

    It can when the job's entries are complete and every validation network
    is done or failed for good (at least one done). Each measured network is
    priced with the LUT's raw sum (:func:`architecture_latency`; a network
    the LUT cannot price is left out and named in ``report.meta.unpriced``);
    :func:`profiler.accuracy.accuracy_report` gives the raw, overhead-corrected
    (``job.overhead_us``) and calibrated figures, the ``linear`` calibration
    fitted on a half of the networks split with the latest draw's seed and
    reported on the other half only. The document has the shape of an
    uploaded one (:func:`set_accuracy` with ``source="job"``); returns it as
    :func:`get_accuracy` does, or ``None`` when there is nothing to compute yet.
    """
    from profiler.accuracy import NetworkRow, accuracy_report  # numpy only: no torch on the server

    if job.status != JobStatus.COMPLETE or job.space is None:
        return None
    progress = validation_progress(session=session, job=job)
    if not progress[WorkStatus.DONE] or progress[WorkStatus.PENDING] or progress[WorkStatus.LEASED]:
        return None
    measured = sorted(
        (
            m
            for m in session.scalars(select(NetworkMeasurement).where(NetworkMeasurement.job_id == job.id))
            if _job_measured(m)
        ),
        key=lambda m: (m.stats.get("index") or 0, m.id),
    )
    snapshot = lut_snapshot(session=session, job=job)
    rows: list[Any] = []
    priced: list[NetworkMeasurement] = []
    unpriced: list[str] = []
    for m in measured:
        try:
            summed = architecture_latency(snapshot, m.arch)
        except StoreError:
            summed = {"complete": False}
        if not summed["complete"] or not m.latency_us > 0:
            unpriced.append(m.arch)
            continue
        rows.append(NetworkRow(m.arch, float(m.latency_us), float(summed["total_us"]), len(summed["layers"])))
        priced.append(m)
    if not rows:
        return None
    latest = max(measured, key=lambda m: m.stats.get("index") or 0)
    seed = int(latest.stats.get("seed") or 0)
    spec = snapshot.space
    assert spec is not None
    runtime = dict(job.provenance.get("runtime") or {})
    cache_mode = str(runtime.get("cache_mode", "warm"))
    report = accuracy_report(
        rows,
        overhead_us=job.overhead_us,
        kind="linear",
        split_seed=seed,
        meta={
            "space": spec.name,
            "resolution": spec.resolution,
            "lut_cache_mode": cache_mode,
            "source": "job",
            "unpriced": unpriced,
        },
    )
    named = [m.arch for m in priced if m.stats.get("named")]
    document = {
        "plan": {"seed": seed, "n": len(priced) - len(named), "named": named},
        "lut_cache_mode": cache_mode,
        "runtime": runtime,
        "finished_at": (now or utcnow()).isoformat(),
        "report": report.to_dict(),
        "networks": [m.stats["network"] for m in priced],
    }
    return set_accuracy(session=session, job=job, document=document, source="job")


def accuracy_summary(snapshot: LutSnapshot) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The LUT's (figures summary, calibration): from an uploaded validation, else from its file's provenance."""
    keys = ("networks", "raw", "raw_held_out", "overhead", "calibrated", "held_out")
    if snapshot.accuracy is not None:
        report = snapshot.accuracy.get("report") or {}
        summary = {k: report.get(k) for k in keys}
        return summary, report.get("calibration")
    prov = snapshot.provenance
    acc = prov.get("accuracy") if isinstance(prov.get("accuracy"), dict) else None
    cal = prov.get("calibration") if isinstance(prov.get("calibration"), dict) else None
    return (None if acc is None else {k: acc.get(k) for k in keys}), cal


def architecture_latency(snapshot: LutSnapshot, arch: str) -> dict[str, Any]:
    """The LUT sum (µs) of one architecture, layer by layer, and which entries are missing."""
    if snapshot.space is None:
        raise Conflict("lut", "this LUT has no search space, so it cannot decode an architecture")
    try:
        entries = snapshot.space.entries_of(arch)
    except ArchitectureError as exc:
        raise Invalid("arch", str(exc)) from None
    names = ["stem", *(f"layer{i}" for i in range(len(entries) - 4)), "head", "pool", "fc"]
    layers = []
    for name, entry in zip(names, entries, strict=True):
        layers.append({"layer": name, "key": entry.key, "latency_us": snapshot.latency(entry)})
    missing = list(dict.fromkeys(layer["key"] for layer in layers if layer["latency_us"] is None))
    total = math.fsum(layer["latency_us"] or 0.0 for layer in layers)
    return {"total_us": total, "layers": layers, "missing": missing, "complete": not missing}


def compare_luts(a: LutSnapshot, b: LutSnapshot) -> dict[str, Any]:
    """Per-entry ratio ``b / a`` over the entries both LUTs have."""
    rows = []
    common: Iterable[str] = [k for k in a.by_entry if k in b.by_entry]
    for key in common:
        la, lb = a.by_entry[key].latency_us, b.by_entry[key].latency_us
        rows.append({"key": key, "a_us": la, "b_us": lb, "ratio": (lb / la) if la > 0 else None})
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None and r["ratio"] > 0]
    geo = math.exp(math.fsum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
    return {
        "entries": rows,
        "geomean_ratio": geo,
        "only_in_a": [k for k in a.by_entry if k not in b.by_entry],
        "only_in_b": [k for k in b.by_entry if k not in a.by_entry],
    }
