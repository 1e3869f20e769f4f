"""LUT queries: one entry, a batch, the whole table, an architecture's sum, two devices compared.

``{lut}`` in a path is a job id or ``latest`` (the device's newest complete
LUT). Latencies are in µs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from lut_store import crud
from lut_store.formats import FormatError, read_table, write_table
from searchspace import Entry

from ..convert import entry_public, job_public
from ..deps import LutCacheDep, ReaderDep, SessionDep, WritableDevice, WriteSessionDep
from ..errors import ApiError, error_responses
from ..schemas import (
    ArchitectureLatency,
    ArchitectureRequest,
    BatchRequest,
    BatchResponse,
    Comparison,
    EntryPublic,
    JobPublic,
    LayerLatency,
    LutImport,
    RatioRow,
)
from .jobs import resolve_space

router = APIRouter(tags=["luts"], responses=error_responses(401, 403, 404, 422))
LUT = "/v1/devices/{name}/luts/{lut}"
Pos = Annotated[int, Query(ge=1, le=100_000)]
_MEDIA = {
    "hwlut": "application/json",
    "csv": "text/csv",
    "hwnasbench": "application/yaml",
    "proxyless": "application/yaml",
    "ofa": "application/yaml",
}


@router.post("/v1/devices/{name}/luts", status_code=201)
def import_lut(body: LutImport, device: WritableDevice, session: WriteSessionDep) -> JobPublic:
    """Store a LUT file (any format) as a complete LUT of the device."""
    try:
        table = read_table(body.content, body.format)
    except FormatError as exc:
        raise ApiError(422, ["body", "content"], str(exc)) from None
    space = resolve_space(body.space, body.resolution) if body.space is not None else None
    job = crud.import_table(session=session, device=device, table=table, space=space)
    return job_public(session=session, job=job)


@router.get(LUT, dependencies=[ReaderDep], responses={200: {"content": {m: {} for m in set(_MEDIA.values())}}})
def download_lut(
    name: str,
    lut: str,
    session: SessionDep,
    cache: LutCacheDep,
    format: Literal["hwlut", "csv", "hwnasbench", "proxyless", "ofa"] = "hwlut",
) -> Response:
    """The whole LUT as hwlut JSON (µs), CSV (µs) or a foreign format (ms)."""
    snap = cache.get(session=session, job=crud.resolve_lut(session=session, device=name, ref=lut))
    try:
        text, _left_out = write_table(crud.snapshot_table(snap), format)
    except FormatError as exc:
        raise ApiError(409, ["query", "format"], str(exc), "conflict") from None
    return Response(text, media_type=_MEDIA[format], headers={"X-Hwlut-Lut": str(snap.job_id)})


@router.get(LUT + "/entries/{key}", dependencies=[ReaderDep])
def get_entry(name: str, lut: str, key: str, session: SessionDep, cache: LutCacheDep) -> EntryPublic:
    """One entry by key, in any rendering (or as a foreign table wrote it)."""
    snap = cache.get(session=session, job=crud.resolve_lut(session=session, device=name, ref=lut))
    row = snap.find(key)
    if row is None:
        raise ApiError(404, ["path", "key"], f"LUT {snap.job_id} of {name!r} has no entry {key!r}", "not_found")
    return entry_public(row)


@router.get(LUT + "/entry", dependencies=[ReaderDep])
def get_entry_by_fields(
    name: str,
    lut: str,
    session: SessionDep,
    cache: LutCacheDep,
    op: Annotated[str, Query(max_length=16)],
    cin: Pos,
    cout: Pos,
    h: Pos,
    w: Pos,
    stride: Pos = 1,
    kernel: Pos = 1,
    expansion: Pos = 1,
    groups: Pos = 1,
) -> EntryPublic:
    """One entry by its fields (``h`` and ``w`` are the input's)."""
    fields = {
        "op": op,
        "cin": cin,
        "cout": cout,
        "h": h,
        "w": w,
        "stride": stride,
        "kernel": kernel,
        "expansion": expansion,
        "groups": groups,
    }
    probe = object.__new__(Entry)
    for k, v in fields.items():
        object.__setattr__(probe, k, v)
    problems = probe.problems()
    if problems:
        field, _, msg = problems[0].partition(": ")
        raise ApiError(422, ["query", field], msg or problems[0])
    snap = cache.get(session=session, job=crud.resolve_lut(session=session, device=name, ref=lut))
    row = snap.by_entry.get(Entry(**fields).key)
    if row is None:
        raise ApiError(404, ["query"], f"LUT {snap.job_id} of {name!r} has no entry {Entry(**fields).key}", "not_found")
    return entry_public(row)


@router.post(LUT + "/batch", dependencies=[ReaderDep])
def get_batch(name: str, lut: str, body: BatchRequest, session: SessionDep, cache: LutCacheDep) -> BatchResponse:
    """Many entries at once, by key in any rendering; the LUT's missing keys are listed."""
    snap = cache.get(session=session, job=crud.resolve_lut(session=session, device=name, ref=lut))
    found, missing = {}, []
    for i, key in enumerate(body.keys):
        try:
            row = snap.find(key)
        except crud.Invalid as exc:
            raise ApiError(422, ["body", "keys", i], exc.message) from None
        if row is None:
            missing.append(key)
        else:
            found[key] = entry_public(row)
    return BatchResponse(lut=snap.job_id, entries=found, missing=missing)


@router.post(LUT + "/latency", dependencies=[ReaderDep])
def architecture_latency(
    name: str, lut: str, body: ArchitectureRequest, session: SessionDep, cache: LutCacheDep
) -> ArchitectureLatency:
    """An architecture's LUT sum with its per-layer breakdown; missing entries are named."""
    snap = cache.get(session=session, job=crud.resolve_lut(session=session, device=name, ref=lut))
    arch = body.arch if isinstance(body.arch, str) else ",".join(body.arch)
    try:
        result = crud.architecture_latency(snap, arch)
    except crud.Invalid as exc:
        raise ApiError(422, ["body", "arch"], exc.message) from None
    return ArchitectureLatency(
        lut=snap.job_id,
        total_us=result["total_us"],
        overhead_us=snap.overhead_us,
        complete=result["complete"],
        missing=result["missing"],
        layers=[LayerLatency(**layer) for layer in result["layers"]],
    )


@router.get("/v1/compare", dependencies=[ReaderDep])
def compare(
    a: str, b: str, session: SessionDep, cache: LutCacheDep, a_lut: str = "latest", b_lut: str = "latest"
) -> Comparison:
    """Two devices' LUTs entry by entry: ``ratio = b / a``."""
    snap_a = cache.get(session=session, job=crud.resolve_lut(session=session, device=a, ref=a_lut))
    snap_b = cache.get(session=session, job=crud.resolve_lut(session=session, device=b, ref=b_lut))
    result = crud.compare_luts(snap_a, snap_b)
    return Comparison(
        a=a,
        b=b,
        a_lut=snap_a.job_id,
        b_lut=snap_b.job_id,
        geomean_ratio=result["geomean_ratio"],
        entries=[RatioRow(**r) for r in result["entries"]],
        only_in_a=result["only_in_a"],
        only_in_b=result["only_in_b"],
    )
