"""Few-shot jobs: the agents measure only K actively chosen entries, the server predicts the rest.

:func:`create_fewshot_job` takes the other devices' newest complete LUTs of
the space as the basis (or the devices named), chooses the K entries whose
measurement tells most about the new device (:func:`searchspace.fewshot.choose`),
and makes an ordinary profiling job restricted to them, its
``options["fewshot"]`` recording K, the basis LUTs (device and job id) and
the ridge weight. When that job completes, :func:`materialise` (called from
:func:`lut_store.crud.jobs.refresh_status`) stores the predicted LUT as a
complete LUT of the device (a job of kind ``fewshot``, so it becomes the
device's ``latest``): each entry's ``source`` is ``measured`` (with the job
that measured it) or ``predicted`` (with its standard deviation ``std``, µs);
its provenance holds the measured job's provenance and ``fewshot`` (the
basis, the weights, the leave-one-out figures on the measured entries).

Entries that this device measured earlier with the same runtime and threads
count as measurements too, newest first: measuring more (another few-shot
job, or a restricted job) turns predicted entries into measured ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from searchspace import LatencyTable, SpaceSpec, parse_key
from searchspace.fewshot import choose
from searchspace.fewshot_lut import basis_from_tables, fewshot_table
from searchspace.jobs import JobSettings, canonical_runtime

from ..errors import Invalid, NotFound
from ..formats import Table, TableRow
from ..models import Device, Job, JobStatus, LutEntry
from .devices import get_device
from .jobs import create_job, get_or_create_space
from .luts import import_table, lut_snapshot

__all__ = ["DEFAULT_RIDGE", "basis_luts", "create_fewshot_job", "materialise"]

DEFAULT_RIDGE = 1e-4


def _complete_luts(*, session: Session, space_id: int, exclude: int | None = None) -> list[Job]:
    """The newest complete measured LUT of each device (but ``exclude``) in the space: none predicted or fitted."""
    query = (
        select(Job)
        .where(Job.space_id == space_id, Job.status == JobStatus.COMPLETE, Job.kind != "fewshot")
        .order_by(Job.completed_at.desc(), Job.id.desc())
    )
    seen: dict[int, Job] = {}
    for job in session.scalars(query):
        if job.device_id != exclude and job.device_id not in seen and "fit" not in (job.provenance or {}):
            seen[job.device_id] = job
    return list(seen.values())


def _table(*, session: Session, job: Job, spec: SpaceSpec) -> LatencyTable:
    rows = lut_snapshot(session=session, job=job).rows
    return LatencyTable(space=spec, entries={r.entry.key: {"median": r.latency_us} for r in rows if r.entry})


def basis_luts(
    *, session: Session, spec: SpaceSpec, device: Device, names: Sequence[str] | None = None
) -> dict[str, tuple[Job, LatencyTable]]:
    """Device name → (job, table) of the LUTs a few-shot prediction combines: complete LUTs of ``spec``.

    ``names`` picks the devices (an :class:`Invalid` ``few_shot_basis[i]``
    names one without a complete LUT of the space); by default every other
    device's newest LUT that holds every entry. A LUT fitted from whole
    networks (``provenance.fit``) is no basis here: its entries are relative
    to :data:`searchspace.fit.GAUGE_RULE`, the measured entries absolute.
    """
    space = get_or_create_space(session=session, spec=spec)
    keys = [e.key for e in spec.distinct_entries()]
    found: dict[str, tuple[Job, LatencyTable]] = {}
    by_device = {job.device_id: job for job in _complete_luts(session=session, space_id=space.id, exclude=device.id)}
    if names is not None:
        for i, name in enumerate(names):
            try:
                other = get_device(session=session, name=name)
            except NotFound:
                raise Invalid(f"few_shot_basis[{i}]", f"no device {name!r}") from None
            job = by_device.get(other.id)
            table = _table(session=session, job=job, spec=spec) if job else None
            if table is None or table.missing():
                raise Invalid(f"few_shot_basis[{i}]", f"device {name!r} has no complete measured LUT of this space")
            found[name] = (job, table)
        return found
    for job in by_device.values():
        table = _table(session=session, job=job, spec=spec)
        if all(k in table.entries for k in keys):
            found[job.device.name] = (job, table)
    return found


def create_fewshot_job(
    *,
    session: Session,
    device: Device,
    spec: SpaceSpec,
    settings: JobSettings,
    k: int,
    basis: Sequence[str] | None = None,
    ridge: float = DEFAULT_RIDGE,
    lease_seconds: float = 300.0,
    max_attempts: int = 3,
) -> Job:
    """A profiling job of ``device`` restricted to the K entries chosen actively; the server predicts the rest."""
    luts = basis_luts(session=session, spec=spec, device=device, names=basis)
    if not luts:
        raise Invalid("few_shot", "no other device has a complete LUT of this space to predict from")
    model_basis = basis_from_tables(spec, {name: table for name, (_job, table) in luts.items()})
    n_entries = len(model_basis.design.entries)
    keys = model_basis.design.keys
    space_id = get_or_create_space(session=session, spec=spec).id
    measured = _measured(
        session=session, device_id=device.id, space_id=space_id, settings=(settings.runtime, settings.threads)
    )
    done = [keys.index(key) for key in measured if key in keys]
    if not 1 <= k <= n_entries - len(done):
        raise Invalid("few_shot", f"expected 1 to {n_entries - len(done)} entries (those not measured yet), got {k}")
    chosen = [keys[i] for i in choose(model_basis, "entries", k, ridge=ridge, given=done)]
    job = create_job(
        session=session,
        device=device,
        spec=spec,
        settings=settings,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
        entries=chosen,
    )
    record = {
        "k": k,
        "mode": "entries",
        "ridge": ridge,
        "basis": [{"device": n, "job": j.id} for n, (j, _t) in luts.items()],
    }
    job.options = {**job.options, "fewshot": record}
    return job


def _measured(
    *, session: Session, device_id: int, space_id: int | None, settings: tuple[str, int | None]
) -> dict[str, tuple[float, int]]:
    """Entry key → (median µs, job id) measured on a device in a space with (runtime, threads), newest first.

    Runtimes compare by their canonical name (a job keeps ``onnxruntime`` or ``ort`` as it was given).
    """
    query = (
        select(LutEntry.entry_key, LutEntry.latency_us, LutEntry.job_id, Job.runtime)
        .join(Job, Job.id == LutEntry.job_id)
        .where(
            Job.device_id == device_id,
            Job.space_id == space_id,
            Job.kind == "profile",
            Job.threads == settings[1],
            LutEntry.entry_key.is_not(None),
        )
        .order_by(Job.id.desc(), LutEntry.id)
    )
    runtime = canonical_runtime(settings[0])
    out: dict[str, tuple[float, int]] = {}
    for key, latency, job_id, job_runtime in session.execute(query):
        if canonical_runtime(job_runtime) == runtime:
            out.setdefault(key, (float(latency), int(job_id)))
    return out


def materialise(*, session: Session, job: Job, now: datetime) -> Job | None:
    """Store the predicted LUT of a completed few-shot job as the device's newest complete LUT.

    A prediction that cannot be made (every basis LUT deleted and the
    measurements degenerate...) does not fail the upload that completed the
    job: the reason goes to ``options["fewshot"]["error"]`` and None is returned.
    """
    try:
        return _materialise(session=session, job=job, now=now)
    except (ValueError, np.linalg.LinAlgError) as exc:
        job.options = {**job.options, "fewshot": {**job.options["fewshot"], "error": str(exc)}}
        return None


def _materialise(*, session: Session, job: Job, now: datetime) -> Job:
    record: dict[str, Any] = dict(job.options["fewshot"])
    spec = SpaceSpec.from_dict(job.space.spec)
    tables = {}
    for ref in record["basis"]:
        basis_job = session.get(Job, ref["job"])
        if basis_job is not None:
            tables[ref["device"]] = _table(session=session, job=basis_job, spec=spec)
    measured = _measured(
        session=session, device_id=job.device_id, space_id=job.space_id, settings=(job.runtime, job.threads)
    )
    table, _model = fewshot_table(
        basis_from_tables(spec, tables), "entries", {k: v for k, (v, _j) in measured.items()}, ridge=record["ridge"]
    )
    rows = []
    for key, stats in table.entries.items():
        if stats["source"] == "measured":
            stats = {**stats, "job": measured[key][1]}
        rows.append(TableRow(key, parse_key(key), stats["median"], stats))
    provenance = {
        **dict(job.provenance or {}),
        "method": table.provenance["method"],
        "fewshot": {**table.provenance["fewshot"], "job": job.id, "basis_jobs": record["basis"]},
    }
    predicted = import_table(
        session=session,
        device=job.device,
        table=Table("hwlut", rows, space=spec, device=None, provenance=provenance, overhead_us=job.overhead_us),
        space=spec,
    )
    predicted.kind = "fewshot"
    predicted.runtime = job.runtime
    predicted.threads = job.threads
    predicted.completed_at = now
    return predicted
