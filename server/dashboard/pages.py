"""The dashboard's pages: Devices, Jobs (with a polled progress fragment), a LUT, two LUTs compared (any spaces).

Server-rendered Jinja2 templates, readable without JavaScript; every page
reads only (the read permission of the JSON routes) and links to the JSON or
file routes it shows. The figures come from :mod:`searchspace.figures`, the
module ``hwlut plot`` draws its PNGs from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from lut_store import crud
from lut_store.models import utcnow
from searchspace import figures

from ..deps import LutCacheDep, ReaderDep, SessionDep, StoreDep
from .queries import condition_values, device_views, job_view, load_table, lut_accuracy
from .search import MAX_RESULT_BYTES, search_view
from .svg import history_svg, ink, probability_colour, ratio_colour, scale_colour, scatter_svg

__all__ = ["FORMATS", "router", "templates"]

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals.update(
    probability_colour=probability_colour,
    ink=ink,
    interval_text=figures.interval_text,
    verdict_text=figures.verdict_text,
)
templates.env.filters["ms"] = lambda v: "–" if v is None else f"{v:.3g}"
router = APIRouter(include_in_schema=False, dependencies=[ReaderDep], default_response_class=HTMLResponse)
#: The LUT file formats offered for download (``GET /v1/devices/{name}/luts/{lut}?format=…``).
FORMATS = ("hwlut", "csv", "hwnasbench", "proxyless", "ofa")


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context, status_code=status_code)


@router.get("/")
def devices_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Every device: runtimes, LUTs, the last agent seen and the conditions of its latest measurements."""
    return _page(request, "devices.html", devices=device_views(session=session, now=utcnow()), active="devices")


@router.get("/jobs")
def jobs_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Every device's jobs, newest first, with their progress."""
    now = utcnow()
    views = [v for d in device_views(session=session, now=now) for v in d.jobs]
    views.sort(key=lambda v: (v.job.status not in ("running", "pending"), -v.job.id))
    return _page(request, "jobs.html", jobs=views, active="jobs")


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: int, session: SessionDep) -> HTMLResponse:
    """One job: live progress (polled), agents seen, time left, failures with their messages."""
    job = crud.get_job(session=session, job_id=job_id)
    return _page(request, "job.html", v=job_view(session=session, job=job, now=utcnow()), active="jobs")


@router.get("/jobs/{job_id}/progress")
def job_progress_fragment(request: Request, job_id: int, session: SessionDep) -> HTMLResponse:
    """The progress block of a job page alone (what the page's poll swaps in)."""
    job = crud.get_job(session=session, job_id=job_id)
    return _page(request, "_progress.html", v=job_view(session=session, job=job, now=utcnow()))


@router.get("/devices/{name}/luts/{lut}")
def lut_page(
    request: Request, name: str, lut: str, session: SessionDep, store: StoreDep, cache: LutCacheDep
) -> HTMLResponse:
    """A LUT: heatmap (ms) with each entry's interval, fixed entries, provenance, accuracy, downloads."""
    try:
        job_id, table = load_table(store=store, cache=cache, device=name, ref=lut)
    except crud.StoreError as exc:
        return _page(request, "empty.html", 404, title=f"No LUT {lut} of {name}", message=exc.message, device=name)
    job = crud.get_job(session=session, job_id=job_id)
    accuracy = lut_accuracy(session=session, job=job)
    scatter = figures.accuracy_scatter(accuracy["report"], accuracy.get("verdict")) if accuracy else None
    hm = figures.heatmap(table) if table is not None else None
    lo, hi = hm.bounds() if hm else (0.0, 1.0)
    context = {
        "name": name,
        "job": job,
        "table": table,
        "hm": hm,
        "colours": [[scale_colour(v, lo, hi) for v in row] for row in hm.values] if hm else [],
        "accuracy": accuracy,
        "scatter": scatter,
        "svg": scatter_svg(scatter) if scatter and scatter.series else None,
        "conds": condition_values(job.provenance),
        "formats": FORMATS,
        "active": "devices",
    }
    return _page(request, "lut.html", **context)


@router.get("/devices/{name}/history")
def history_page(request: Request, name: str, session: SessionDep, store: StoreDep, cache: LutCacheDep) -> HTMLResponse:
    """A device's complete LUTs over time: each one's sum for FBNet-A/B/C, steps and changed conditions marked."""
    device = crud.get_device(session=session, name=name)
    luts = []
    for job in reversed(crud.list_jobs(session=session, device=device)):
        if job.status == "complete" and job.space is not None:
            _, table = load_table(store=store, cache=cache, device=name, ref=str(job.id))
            when = job.completed_at or job.created_at
            luts.append((str(job.id), when.strftime("%Y-%m-%d %H:%M"), table))
    hist = figures.history(luts) if luts else None
    context = {"name": name, "h": hist, "svg": history_svg(hist) if hist else None, "active": "devices"}
    return _page(request, "history.html", **context)


@router.get("/compare")
def compare_page(
    request: Request,
    session: SessionDep,
    store: StoreDep,
    cache: LutCacheDep,
    a: str | None = None,
    b: str | None = None,
    a_lut: str = "latest",
    b_lut: str = "latest",
) -> HTMLResponse:
    """Two LUTs: ratio heatmap, rank correlation per layer, layers whose fastest differs.

    LUTs of different spaces (a device against an imported phone table) are
    compared over their matched entries on A's layers, the unmatched counted.
    """
    devices = [d.name for d in crud.list_devices(session=session)]
    context: dict[str, Any] = {"devices": devices, "a": a, "b": b, "a_lut": a_lut, "b_lut": b_lut, "active": "compare"}
    if not a or not b:
        return _page(request, "compare.html", **context)
    try:
        a_id, ta = load_table(store=store, cache=cache, device=a, ref=a_lut)
        b_id, tb = load_table(store=store, cache=cache, device=b, ref=b_lut)
        if ta is None or tb is None:
            raise ValueError("a LUT without a search space cannot be drawn as layers × candidates")
        cmp = figures.compare(ta, tb)
    except (crud.StoreError, ValueError) as exc:
        message = exc.message if isinstance(exc, crud.StoreError) else str(exc)
        return _page(request, "compare.html", 409 if isinstance(exc, ValueError) else 404, error=message, **context)
    span = max((abs(math.log(r)) for row in cmp.ratio for r in row if r), default=1.0) or 1.0
    colours = [[ratio_colour(r, span) for r in row] for row in cmp.ratio]
    context.update(cmp=cmp, a_id=a_id, b_id=b_id, colours=colours)
    return _page(request, "compare.html", **context)


@router.get("/search")
def search_form(request: Request) -> HTMLResponse:
    """The Search page: pick a ``search_result.json`` (``hwlut search --out DIR``) to see."""
    return _page(request, "search.html", active="search")


@router.post("/search")
async def search_page(request: Request, result: UploadFile) -> HTMLResponse:
    """A search result: P(θ) per layer, the chosen architecture, expected latency and accuracy per epoch.

    Rendered from the uploaded file alone: nothing is stored.
    """
    raw = await result.read(MAX_RESULT_BYTES + 1)
    if len(raw) > MAX_RESULT_BYTES:
        return _page(
            request, "search.html", 413, error=f"result: larger than {MAX_RESULT_BYTES} bytes", active="search"
        )
    try:
        view = search_view(raw)
    except ValueError as exc:
        return _page(request, "search.html", 422, error=str(exc), active="search")
    return _page(request, "search.html", view=view, filename=result.filename, active="search")
