"""The FastAPI app: :func:`create_app` assembles settings, the store, handlers and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from lut_store import Store

from . import dashboard
from .cache import LutCache
from .errors import BodySizeLimit, document_body_limit, install_error_handlers
from .fastpath import CachedEntries
from .guard import SafeTarget, safe_body
from .health import Faults
from .health import router as health_router
from .logs import AccessLog, configure_logging
from .openapi import document_security
from .options import AllowedMethods
from .ratelimit import UploadRateLimit
from .routes import accuracy, devices, fewshot, jobs, leases, luts
from .settings import Settings, get_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, *, store: Store | None = None, check_schema: bool = True) -> FastAPI:
    """The hwlut server. Refuses to start on a database whose schema is behind (``hwlut db upgrade``)."""
    settings = settings or get_settings()
    configure_logging()
    store = store or Store(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if check_schema:
            store.check_schema()
        yield

    app = FastAPI(
        title="hwlut",
        version="1",
        summary="Device latency lookup tables (latencies in µs).",
        lifespan=lifespan,
        docs_url=None,  # served by the dashboard from the package's own assets (no CDN)
        redoc_url=None,
        dependencies=[Depends(safe_body)],
    )
    app.state.store = store
    app.state.settings = settings
    app.state.lut_cache = LutCache(ttl_s=settings.lut_cache_ttl_s)
    app.state.faults = Faults()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    document_body_limit(app)
    document_security(app)
    app.add_middleware(CachedEntries, settings=settings, cache=app.state.lut_cache)
    app.add_middleware(UploadRateLimit, rate=settings.upload_rate)
    app.add_middleware(SafeTarget)
    app.add_middleware(AllowedMethods, api=app)
    app.add_middleware(AccessLog)

    app.include_router(health_router)
    for module in (luts, accuracy, devices, jobs, fewshot, leases):  # the hot read routes first: matched in order
        app.include_router(module.router)
    app.include_router(leases.identity)
    dashboard.mount(app)
    return app
