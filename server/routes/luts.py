"""LUTs: import one, and query it: one entry, a batch, the whole table, an architecture's sum, two devices compared.

``{lut}`` in a path is a job id or ``latest`` (the device's newest complete
LUT). Latencies are in µs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lut_store import crud
from lut_store.formats import FormatError, read_table
from searchspace import Entry
from searchspace.accuracy import calibrated_prediction

from ..cache import CachedLut
from ..convert import entry_public, job_public
from ..deps import (
    LutCacheDep,
    ReaderDep,
    StoreDep,
    WritableDevice,
    WriteSessionDep,
    cache_of,
    store_of,
)
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
from ..spaces import resolve_space

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
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError) as exc:
        # a reader's own slip on a file it did not expect: still the file's fault, never a 500
        raise ApiError(422, ["body", "content"], f"cannot read the file: {type(exc).__name__}: {exc}"[:500]) from None
    space = resolve_space(body.space, body.resolution) if body.space is not None else None
    job = crud.import_table(session=session, device=device, table=table, space=space)
    return job_public(session=session, job=job)


async def _lut(request: Request, name: str, lut: str) -> CachedLut:
    """The LUT ``lut`` of device ``name``: from memory when cached, else read in a worker thread."""
    cache = cache_of(request)
    hit = cache.lookup(name, lut)
    if hit is None:
        hit = await run_in_threadpool(cache.load, store=store_of(request), device=name, ref=lut)
    return hit


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get(
    LUT,
    dependencies=[ReaderDep],
    response_class=Response,
    responses={
        200: {
            "description": "the LUT file: hwlut JSON or YAML (a mapping), or CSV (text)",
            "headers": {"X-Hwlut-Lut": {"description": "the LUT's job id", "schema": {"type": "string"}}},
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/yaml": {"schema": {"type": "object"}},
            },
        }
    },
)
async def download_lut(
    request: Request,
    name: str,
    lut: str,
    format: Literal["hwlut", "csv", "hwnasbench", "proxyless", "ofa"] = "hwlut",
) -> Response:
    """The whole LUT as hwlut JSON (µs), CSV (µs) or a foreign format (ms)."""
    cached = await _lut(request, name, lut)
    try:
        body = (
            cached.document(format) if cached.has_document(format) else await run_in_threadpool(cached.document, format)
        )
    except FormatError as exc:
        raise ApiError(409, ["query", "format"], str(exc), "conflict") from None
    return Response(body, media_type=_MEDIA[format], headers={"X-Hwlut-Lut": str(cached.job_id)})


@router.get(LUT + "/entries/{key}", dependencies=[ReaderDep], response_model=EntryPublic)
async def get_entry(request: Request, name: str, lut: str, key: str) -> Response:
    """One entry by key, in any rendering (or as a foreign table wrote it)."""
    cached = await _lut(request, name, lut)
    body = cached.entry_json(key)
    if body is None:
        raise ApiError(404, ["path", "key"], f"LUT {cached.job_id} of {name!r} has no entry {key!r}", "not_found")
    return _json(body)


@router.get(LUT + "/entry", dependencies=[ReaderDep], response_model=EntryPublic)
async def get_entry_by_fields(
    request: Request,
    name: str,
    lut: str,
    op: Annotated[str, Query(max_length=16)],
    cin: Pos,
    cout: Pos,
    h: Pos,
    w: Pos,
    stride: Pos = 1,
    kernel: Pos = 1,
    expansion: Pos = 1,
    groups: Pos = 1,
) -> Response:
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
    cached = await _lut(request, name, lut)
    canonical = Entry(**fields).key
    body = cached.entry_json_by_canonical(canonical)
    if body is None:
        raise ApiError(404, ["query"], f"LUT {cached.job_id} of {name!r} has no entry {canonical}", "not_found")
    return _json(body)


@router.post(LUT + "/batch", dependencies=[ReaderDep])
def get_batch(name: str, lut: str, body: BatchRequest, store: StoreDep, cache: LutCacheDep) -> BatchResponse:
    """Many entries at once, by key in any rendering; the LUT's missing keys are listed."""
    snap = cache.resolve(store=store, device=name, ref=lut).snapshot
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
    name: str, lut: str, body: ArchitectureRequest, store: StoreDep, cache: LutCacheDep
) -> ArchitectureLatency:
    """An architecture's LUT sum with its per-layer breakdown; missing entries are named."""
    snap = cache.resolve(store=store, device=name, ref=lut).snapshot
    arch = body.arch if isinstance(body.arch, str) else ",".join(body.arch)
    try:
        result = crud.architecture_latency(snap, arch)
    except crud.Invalid as exc:
        raise ApiError(422, ["body", "arch"], exc.message) from None
    accuracy, calibration = crud.accuracy_summary(snap)
    calibrated = calibrated_prediction(result["total_us"], calibration) if result["complete"] else None
    return ArchitectureLatency(
        lut=snap.job_id,
        total_us=result["total_us"],
        calibrated_us=calibrated,
        overhead_us=snap.overhead_us,
        complete=result["complete"],
        missing=result["missing"],
        layers=[LayerLatency(**layer) for layer in result["layers"]],
        calibration=calibration,
        accuracy=accuracy,
    )


@router.get("/v1/compare", dependencies=[ReaderDep])
def compare(
    a: str, b: str, store: StoreDep, cache: LutCacheDep, a_lut: str = "latest", b_lut: str = "latest"
) -> Comparison:
    """Two devices' LUTs entry by entry: ``ratio = b / a``."""
    snap_a = cache.resolve(store=store, device=a, ref=a_lut).snapshot
    snap_b = cache.resolve(store=store, device=b, ref=b_lut).snapshot
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
