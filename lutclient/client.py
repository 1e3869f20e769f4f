"""A small typed HTTP client of the hwlut server, shared by the agent, the searcher and the CLI.

Needs only httpx and :mod:`searchspace` (no torch, no server code). Exceptions::

    HwlutError
     ├── ServerUnreachable      the request did not get an answer (connect, timeout, ...)
     └── ApiError               the server answered 4xx / 5xx (.status, .problems)
          ├── Unauthorized      401 / 403: no token, a wrong token, another device's job
          ├── NotFound          404
          ├── Conflict          409: e.g. an item not leased to you any more
          └── Invalid           413 / 422: the request names a bad field

Every latency is in µs. Tests swap the network for ``httpx.MockTransport``
or an ASGI transport through ``transport=``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from searchspace import Entry, JobSettings, LatencyTable

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiError",
    "Conflict",
    "HwlutClient",
    "HwlutError",
    "Invalid",
    "Lease",
    "NotFound",
    "ServerUnreachable",
    "Unauthorized",
    "WorkItem",
]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class HwlutError(Exception):
    """Anything the client could not do; :attr:`url` is the server's base URL when a request was made."""

    url: str | None = None


class ServerUnreachable(HwlutError):
    """No answer from the server (refused, timed out, cut)."""


class ApiError(HwlutError):
    """The server refused the request; ``problems`` are its ``{loc, msg, type}`` items."""

    def __init__(self, status: int, problems: list[dict[str, Any]], text: str = "") -> None:
        self.status = status
        self.problems = problems
        shown = "; ".join(f"{'.'.join(map(str, p.get('loc', [])))}: {p.get('msg')}" for p in problems) or text[:200]
        super().__init__(f"HTTP {status}: {shown}")


class Unauthorized(ApiError):
    """401 or 403."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409."""


class Invalid(ApiError):
    """413 or 422."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: Invalid,
    422: Invalid,
}


@dataclass(frozen=True)
class WorkItem:
    """A leased work item to measure; its result is uploaded with :attr:`item_id`.

    Kind ``entry``: a LUT entry (:attr:`entry`); kind ``network``: a whole
    validation network (:attr:`arch`).
    """

    item_id: int
    key: str
    fields: dict[str, Any]
    attempts: int = 0
    kind: str = "entry"

    @property
    def entry(self) -> Entry:
        """The LUT entry to measure (an item of kind ``entry``)."""
        return Entry(**self.fields)

    @property
    def arch(self) -> str:
        """The validation network's architecture (an item of kind ``network``)."""
        return str(self.fields["arch"])


@dataclass(frozen=True)
class Lease:
    """Items claimed together; heartbeat, upload and failures name :attr:`lease_id`."""

    lease_id: str
    expires_at: str
    items: list[WorkItem]


class HwlutClient:
    """The hwlut server's API. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout,
            transport=transport if transport is not None else httpx.HTTPTransport(retries=retries),
        )

    def __enter__(self) -> HwlutClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def base_url(self) -> str:
        """The server's URL as requests start with it (no trailing slash)."""
        return str(self._http.base_url).rstrip("/")

    # -- plumbing ------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            error: HwlutError = ServerUnreachable(f"{method} {path}: {type(exc).__name__}: {exc}")
            error.url = self.base_url
            raise error from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = body.get("detail") if isinstance(body, dict) else None
            except ValueError:
                detail = None
            problems = detail if isinstance(detail, list) else ([{"loc": [], "msg": str(detail)}] if detail else [])
            error = _BY_STATUS.get(response.status_code, ApiError)(response.status_code, problems, response.text)
            error.url = self.base_url
            raise error
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return None if response.status_code == 204 else response.json()

    # -- devices -----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "schema_revision": ...}``."""
        return self._json("GET", "/v1/health")

    def create_device(
        self,
        name: str,
        *,
        description: str = "",
        hardware: Mapping[str, Any] | None = None,
        runtime: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Register a device (admin token); the answer's ``token`` is shown this once."""
        body = {
            "name": name,
            "description": description,
            "hardware": dict(hardware or {}),
            "runtime": dict(runtime or {}),
        }
        return self._json("POST", "/v1/devices", json=body)

    def whoami(self) -> dict[str, Any]:
        """``{"admin": bool, "device": name or None}``: who this client's token is."""
        return self._json("GET", "/v1/whoami")

    def devices(self) -> list[dict[str, Any]]:
        """Every device."""
        return self._json("GET", "/v1/devices")

    def device(self, name: str) -> dict[str, Any]:
        """One device."""
        return self._json("GET", f"/v1/devices/{name}")

    def delete_device(self, name: str) -> None:
        """Delete a device and its LUTs (admin token)."""
        self._json("DELETE", f"/v1/devices/{name}")

    def new_token(self, name: str) -> str:
        """Another token for a device (admin token)."""
        return self._json("POST", f"/v1/devices/{name}/tokens")["token"]

    # -- jobs and the agent protocol -------------------------------------------------
    def create_job(
        self,
        device: str,
        *,
        space: str | Mapping[str, Any] = "fbnet",
        resolution: int | None = None,
        settings: JobSettings | None = None,
        lease_seconds: float = 300.0,
        max_attempts: int = 3,
        entries: Sequence[str] | None = None,
        validation: Mapping[str, Any] | None = None,
        runtime: str | None = None,
        threads: int | None = None,
        options: Mapping[str, Any] | None = None,
        few_shot: int | None = None,
        few_shot_basis: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A profiling job for ``device``: its work items are the space's distinct entries (or only ``entries``).

        ``settings`` say what the job is measured with (default:
        ``JobSettings()``, onnxruntime with the runtime's defaults). The
        older form, ``runtime``, ``threads`` and ``options`` (the body's
        fields as they are), is sent unchanged for the server to check; it
        cannot be mixed with ``settings`` (TypeError). A setting the server
        refuses is :class:`Invalid` naming it (``body.options.cache_mode``).

        ``validation`` (``{"n": int, "seed": int, "archs": [str]}``) adds
        validation networks that the job's agents measure beside the entries.

        ``few_shot`` K makes a few-shot job: the server chooses K entries, the
        agents measure them, the server predicts the rest from the complete
        LUTs of other devices (``few_shot_basis``, default all).
        """
        if settings is None:
            given = JobSettings().to_dict()
            for name, value in (("runtime", runtime), ("threads", threads)):
                if value is not None:
                    given[name] = value
            if options is not None:
                given["options"] = dict(options)
        elif runtime is not None or threads is not None or options is not None:
            raise TypeError("create_job: give settings, or runtime/threads/options, not both")
        else:
            given = settings.to_dict()
        body = {
            "space": space if isinstance(space, str) else dict(space),
            "resolution": resolution,
            **given,
            "lease_seconds": lease_seconds,
            "max_attempts": max_attempts,
        }
        if entries is not None:
            body["entries"] = list(entries)
        if validation is not None:
            body["validation"] = dict(validation)
        if few_shot is not None:
            body["few_shot"] = few_shot
            body["few_shot_basis"] = list(few_shot_basis) if few_shot_basis is not None else None
            return self._json("POST", f"/v1/devices/{device}/jobs/few-shot", json=body)
        return self._json("POST", f"/v1/devices/{device}/jobs", json=body)

    def job(self, job_id: int) -> dict[str, Any]:
        """A job's status and ``progress``."""
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(self, device: str) -> list[dict[str, Any]]:
        """A device's jobs and imported LUTs, newest first."""
        return self._json("GET", f"/v1/devices/{device}/jobs")

    def list_jobs(
        self, *, device: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Jobs and imported LUTs of every device (or of ``device``, with ``status``), newest first."""
        params: dict[str, Any] = {"limit": limit}
        params.update({k: v for k, v in (("device", device), ("status", status)) if v is not None})
        return self._json("GET", "/v1/jobs", params=params)

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        """Cancel a job: its items not measured yet are dropped, agents skip it; returns the job."""
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def failed(self, job_id: int) -> list[dict[str, Any]]:
        """Items of a job that failed for good: ``[{"item_id", "key", "attempts", "error"}]``."""
        return self._json("GET", f"/v1/jobs/{job_id}/failed")

    def claim(
        self,
        job_id: int,
        *,
        agent: str,
        max_items: int = 16,
        lease_seconds: float | None = None,
        lease_id: str | None = None,
    ) -> Lease:
        """Lease up to ``max_items`` items (an empty lease when nothing is left).

        ``lease_id`` (16-64 of ``[A-Za-z0-9_-]``) makes the claim idempotent:
        asked again with the same id, the server returns the items it leased
        under it instead of leasing more.
        """
        body: dict[str, Any] = {"agent": agent, "max_items": max_items}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        if lease_id is not None:
            body["lease_id"] = lease_id
        doc = self._json("POST", f"/v1/jobs/{job_id}/claim", json=body)
        items = [WorkItem(i["item_id"], i["key"], i["fields"], i["attempts"], i["kind"]) for i in doc["items"]]
        return Lease(doc["lease_id"], doc["expires_at"], items)

    def heartbeat(self, job_id: int, lease_id: str, *, lease_seconds: float | None = None) -> dict[str, Any]:
        """Extend a lease; :class:`NotFound` when it holds nothing any more."""
        body: dict[str, Any] = {"lease_id": lease_id}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        return self._json("POST", f"/v1/jobs/{job_id}/heartbeat", json=body)

    def upload(
        self,
        job_id: int,
        lease_id: str,
        results: Sequence[Mapping[str, Any]],
        *,
        provenance: Mapping[str, Any] | None = None,
        overhead_us: float | None = None,
    ) -> dict[str, Any]:
        """Upload ``[{"item_id": ID, "stats": {"median": µs, ...}}, ...]``; safe to retry."""
        body: dict[str, Any] = {
            "lease_id": lease_id,
            "results": [dict(r) for r in results],
            "provenance": dict(provenance or {}),
        }
        if overhead_us is not None:
            body["overhead_us"] = overhead_us
        return self._json("POST", f"/v1/jobs/{job_id}/results", json=body)

    def release(self, job_id: int, lease_id: str, item_ids: Sequence[int] | None = None) -> int:
        """Hand back leased items unmeasured (all of the lease's, or ``item_ids``); returns how many."""
        body: dict[str, Any] = {"lease_id": lease_id}
        if item_ids is not None:
            body["item_ids"] = list(item_ids)
        return self._json("POST", f"/v1/jobs/{job_id}/release", json=body)["released"]

    def fail(self, job_id: int, lease_id: str, item_id: int, error: str) -> dict[str, Any]:
        """Report an item that could not be measured (retried up to the job's limit)."""
        body = {"lease_id": lease_id, "item_id": item_id, "error": error[:4000]}
        return self._json("POST", f"/v1/jobs/{job_id}/failures", json=body)

    # -- LUTs ---------------------------------------------------------------------
    def import_lut(
        self,
        device: str,
        content: str,
        *,
        format: str | None = None,
        space: str | Mapping[str, Any] | None = None,
        resolution: int | None = None,
    ) -> dict[str, Any]:
        """Store a LUT file's text as ``device``'s LUT."""
        body = {"content": content, "format": format, "space": space, "resolution": resolution}
        return self._json("POST", f"/v1/devices/{device}/luts", json=body)

    def lut_text(self, device: str, lut: str | int = "latest", *, format: str = "hwlut") -> str:
        """The whole LUT as file text (``hwlut`` JSON, ``csv``, ``hwnasbench``, ``proxyless``, ``ofa``)."""
        return self._request("GET", f"/v1/devices/{device}/luts/{lut}", params={"format": format}).text

    def lut(self, device: str, lut: str | int = "latest") -> LatencyTable:
        """The whole LUT as a :class:`searchspace.LatencyTable` (µs)."""
        return LatencyTable.from_dict(self._json("GET", f"/v1/devices/{device}/luts/{lut}"))

    def lut_and_id(self, device: str, lut: str | int = "latest") -> tuple[int, LatencyTable]:
        """The whole LUT and its job id (what ``latest`` named when it was read)."""
        response = self._request("GET", f"/v1/devices/{device}/luts/{lut}")
        return int(response.headers["X-Hwlut-Lut"]), LatencyTable.from_dict(response.json())

    def entry(self, device: str, key: str, *, lut: str | int = "latest") -> dict[str, Any]:
        """One entry by key in any rendering: ``{"latency_us", "stats", ...}``."""
        return self._json("GET", f"/v1/devices/{device}/luts/{lut}/entries/{key}")

    def entries(self, device: str, keys: Sequence[str], *, lut: str | int = "latest") -> dict[str, Any]:
        """Many entries: ``{"entries": {key: entry}, "missing": [key, ...]}``."""
        return self._json("POST", f"/v1/devices/{device}/luts/{lut}/batch", json={"keys": list(keys)})

    def architecture_latency(
        self, device: str, arch: str | Sequence[str], *, lut: str | int = "latest"
    ) -> dict[str, Any]:
        """An architecture's LUT sum (``total_us``), per layer, ``missing`` entries; ``calibrated_us``, ``accuracy``."""
        body = {"arch": arch if isinstance(arch, str) else list(arch)}
        return self._json("POST", f"/v1/devices/{device}/luts/{lut}/latency", json=body)

    def upload_accuracy(self, device: str, report: Mapping[str, Any], *, lut: str | int = "latest") -> dict[str, Any]:
        """Store a LUT's validation (:meth:`profiler.validate.ValidationResult.to_dict`); returns it as stored."""
        return self._json("PUT", f"/v1/devices/{device}/luts/{lut}/accuracy", json=dict(report))

    def add_validation(
        self,
        device: str,
        *,
        lut: str | int = "latest",
        n: int = 30,
        seed: int = 0,
        archs: Sequence[str] = (),
        draw: str = "stratified",
    ) -> dict[str, Any]:
        """Add validation networks to a profiling job, for the device's agents to measure.

        ``draw``: ``stratified`` over the LUT-sum range of a MAC-based proxy
        LUT, or ``uniform``. Returns ``{"lut", "job_status", "archs", "added",
        "validation"}``; the server computes the LUT's accuracy when they are
        measured (:meth:`accuracy`).
        """
        body = {"n": n, "seed": seed, "archs": list(archs), "draw": draw}
        return self._json("POST", f"/v1/devices/{device}/luts/{lut}/validation", json=body)

    def accuracy(self, device: str, *, lut: str | int = "latest") -> dict[str, Any]:
        """A LUT's stored validation: ``report`` (rows, figures, calibration), ``plan``, ``networks``."""
        return self._json("GET", f"/v1/devices/{device}/luts/{lut}/accuracy")

    def compare(self, a: str, b: str, *, a_lut: str | int = "latest", b_lut: str | int = "latest") -> dict[str, Any]:
        """Two devices' LUTs entry by entry (``ratio = b / a``)."""
        params = {"a": a, "b": b, "a_lut": str(a_lut), "b_lut": str(b_lut)}
        return self._json("GET", "/v1/compare", params=params)
