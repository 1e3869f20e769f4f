"""A LUT's accuracy against whole networks: validation networks added to a job, reports stored and computed.

A report is uploaded (measured elsewhere, ``source="upload"``) or computed
here from the validation networks the job's own agents measured
(``source="job"``); its per-network rows live in :class:`NetworkMeasurement`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from searchspace import DEFAULT_NETWORKS, SpaceSpec, network_item_key

from ..errors import Conflict, Invalid, NotFound, StoreError
from ..models import Job, JobStatus, NetworkMeasurement, WorkItem, WorkStatus, utcnow
from ..snapshots import architecture_latency
from .changes import mark_luts_changed
from .jobs import network_rows, validation_networks, validation_progress
from .luts import lut_snapshot

__all__ = ["add_validation", "get_accuracy", "refresh_job_accuracy", "set_accuracy"]


def add_validation(
    *,
    session: Session,
    job: Job,
    n: int = DEFAULT_NETWORKS,
    seed: int = 0,
    archs: Sequence[str] = (),
    draw: str = "stratified",
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
    networks, named = validation_networks(spec, n=n, seed=seed, archs=archs, where="", draw=draw)
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
        rows = network_rows(job.id, [a for _, a in new], 0, seed=seed, first_index=first, now=now)
        for (i, _), row in zip(new, rows, strict=True):
            row["fields"]["named"] = i < named
        session.execute(insert(WorkItem), rows)
        plan = {
            "n": n,
            "seed": seed,
            "draw": draw,
            "archs": networks[:named],
            "networks": len(networks),
            "added": len(new),
        }
        rounds = job.options.get("validation")
        job.options = {**job.options, "validation": [*(rounds if isinstance(rounds, list) else []), plan]}
        session.flush()
    elif (job.accuracy or {}).get("source") != "job":
        refresh_job_accuracy(session=session, job=job, now=now)
    return networks, len(new)


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
    if source == "upload" and job.status != JobStatus.COMPLETE:
        raise Conflict("lut", f"job {job.id} is {job.status}: a report validates a complete LUT only")
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
    :func:`searchspace.accuracy.accuracy_report` gives the raw, overhead-corrected
    (``job.overhead_us``) and calibrated figures, the calibration that seeded
    cross-validation (the latest draw's seed) chose, every figure out of fold. The document has the shape of an
    uploaded one (:func:`set_accuracy` with ``source="job"``); returns it as
    :func:`get_accuracy` does, or ``None`` when there is nothing to compute yet.
    """
    from searchspace.accuracy import NetworkRow, accuracy_report  # numpy and scipy: loaded when first needed

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
        kind="auto",
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
