"""What the pages show, read from the store in the request's read transaction (nothing is written).

The LUT pages read the same rendered LUT file the download route serves
(:meth:`server.cache.CachedLut.document`), as a
:class:`~searchspace.lutfile.LatencyTable`, so the page, the file and
``hwlut plot`` agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lut_store import Store, crud
from lut_store.models import Device, Job, JobStatus, WorkItem, WorkStatus
from searchspace import LatencyTable

from ..cache import LutCache

__all__ = [
    "CONDITIONS",
    "DeviceView",
    "JobView",
    "condition_values",
    "device_views",
    "job_view",
    "load_table",
    "lut_accuracy",
]

#: The measurement conditions a reader checks before trusting a LUT: (label, dotted provenance path).
CONDITIONS = (
    ("runtime", "runtime.runtime"),
    ("runtime version", "runtime.runtime_version"),
    ("threads", "runtime.threads"),
    ("cache mode", "runtime.cache_mode"),
    ("CPU model", "host.cpu_model"),
    ("governor", "host.governor"),
    ("affinity", "host.affinity"),
)
#: An agent counts as seen recently when it touched an item this long ago or less.
RECENT = timedelta(minutes=10)


def _dig(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def condition_values(provenance: dict[str, Any]) -> list[tuple[str, Any]]:
    """The :data:`CONDITIONS` of a LUT's provenance, as (label, value or None)."""
    return [(label, _dig(provenance, path)) for label, path in CONDITIONS]


@dataclass
class JobView:
    """A job with its progress, the agents seen on it, its rate and estimated time left, and its failures.

    ``failures``: items not done whose last attempt failed (failed for good, or pending a retry).
    """

    job: Job
    progress: dict[str, int]
    validation: dict[str, int]
    agents: list[tuple[str, datetime]] = field(default_factory=list)
    rate_per_min: float | None = None
    eta_s: float | None = None
    failures: list[WorkItem] = field(default_factory=list)

    @property
    def threads(self) -> Any:
        """The job's threads setting, else the threads its results were measured with."""
        return self.job.threads or _dig(self.job.provenance, "runtime.threads")

    @property
    def lut_state(self) -> str:
        """complete, partial (some entries), empty or failed."""
        if self.job.status == JobStatus.COMPLETE:
            return "predicted" if self.job.kind == "predicted" else "complete"
        if self.progress.get(WorkStatus.DONE):
            return "partial"
        return self.job.status


def job_view(*, session: Session, job: Job, now: datetime, details: bool = True) -> JobView:
    """A job's progress; with ``details``, agents seen, the rate of the last items done and the time left."""
    view = JobView(job, crud.job_progress(session=session, job=job), crud.validation_progress(session=session, job=job))
    if not details:
        return view
    seen = session.execute(
        select(WorkItem.leased_by, func.max(WorkItem.updated_at))
        .where(WorkItem.job_id == job.id, WorkItem.leased_by.is_not(None))
        .group_by(WorkItem.leased_by)
        .order_by(func.max(WorkItem.updated_at).desc())
    ).all()
    view.agents = [(agent, at) for agent, at in seen if at is not None and now - at <= RECENT]
    done = session.scalars(
        select(WorkItem.updated_at)
        .where(WorkItem.job_id == job.id, WorkItem.status == WorkStatus.DONE)
        .order_by(WorkItem.updated_at.desc())
        .limit(50)
    ).all()
    if len(done) >= 2 and done[0] > done[-1]:
        span_s = (done[0] - done[-1]).total_seconds()
        view.rate_per_min = (len(done) - 1) / span_s * 60.0
        left = view.progress[WorkStatus.PENDING] + view.progress[WorkStatus.LEASED]
        view.eta_s = left / view.rate_per_min * 60.0 if job.status != JobStatus.COMPLETE else 0.0
    view.failures = list(
        session.scalars(
            select(WorkItem)
            .where(WorkItem.job_id == job.id, WorkItem.last_error.is_not(None), WorkItem.status != WorkStatus.DONE)
            .order_by(WorkItem.id)
        )
    )
    return view


@dataclass
class DeviceView:
    """A device with its jobs (newest first), runtimes, LUT counts, last agent seen and latest conditions."""

    device: Device
    jobs: list[JobView]
    runtimes: list[str]
    counts: dict[str, int]
    last_agent: tuple[str, datetime] | None
    conditions: list[tuple[str, Any]]


def device_views(*, session: Session, now: datetime) -> list[DeviceView]:
    """Every device as the Devices page shows it."""
    out = []
    for device in crud.list_devices(session=session):
        jobs = [
            job_view(session=session, job=j, now=now, details=False)
            for j in crud.list_jobs(session=session, device=device)
        ]
        last = session.execute(
            select(WorkItem.leased_by, WorkItem.updated_at)
            .join(Job, Job.id == WorkItem.job_id)
            .where(Job.device_id == device.id, WorkItem.leased_by.is_not(None))
            .order_by(WorkItem.updated_at.desc())
            .limit(1)
        ).first()
        runtimes = list(dict.fromkeys([*(j.job.runtime for j in jobs if j.job.runtime), *_device_runtime(device)]))
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j.lut_state] = counts.get(j.lut_state, 0) + 1
        measured = next((j.job for j in jobs if j.job.provenance), None)
        conditions = condition_values(measured.provenance if measured else {})
        if measured is None or all(v is None for _, v in conditions):
            conditions = [(k, v) for k, v in condition_values({"runtime": device.runtime, "host": device.hardware})]
        out.append(DeviceView(device, jobs, runtimes, counts, (last[0], last[1]) if last else None, conditions))
    return out


def _device_runtime(device: Device) -> list[str]:
    name = device.runtime.get("runtime") if isinstance(device.runtime, dict) else None
    return [str(name)] if name else []


def load_table(*, store: Store, cache: LutCache, device: str, ref: str) -> tuple[int, LatencyTable | None]:
    """The LUT ``ref`` of ``device`` as the download route serves it (hwlut JSON); None when it has no space."""
    cached = cache.resolve(store=store, device=device, ref=ref)
    if cached.snapshot.space is None:
        return cached.job_id, None
    return cached.job_id, LatencyTable.from_dict(json.loads(cached.document("hwlut")))


def lut_accuracy(*, session: Session, job: Job) -> dict[str, Any] | None:
    """The LUT's stored accuracy document (:func:`lut_store.crud.get_accuracy`) with its verdict; None without one.

    The verdict is ``searchspace.intervals.verdict`` where this tree has it
    (the accuracy route's), else the document's own ``verdict`` if any.
    """
    if job.accuracy is None:
        return None
    doc = crud.get_accuracy(session=session, job=job)
    try:
        from searchspace.intervals import verdict  # type: ignore[import-not-found]
    except ImportError:
        return doc
    report = doc.get("report") or {}
    noise = (report.get("meta") or {}).get("noise")
    return {**doc, "verdict": verdict(report, noise if isinstance(noise, dict) else None)}
