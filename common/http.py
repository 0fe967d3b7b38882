"""The app factory every service uses: lifespan, health and readiness, errors, and serving."""

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from common.db import SessionMaker
from common.logs import configure_logging
from common.runtime import Runtime
from common.settings import ServiceSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)


def _sessionmaker(request: Request) -> SessionMaker:
    sessionmaker: SessionMaker | None = request.app.state.runtime.sessionmaker
    assert sessionmaker is not None, "this service has no database"
    return sessionmaker


Sessions = Annotated[SessionMaker, Depends(_sessionmaker)]
"""The service's sessionmaker, for an HTTP route: ``async def route(sessions: Sessions)``."""


def create_service_app(
    runtime: Runtime,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    description: str = "",
) -> FastAPI:
    """A FastAPI app whose lifespan runs ``runtime``; with ``/healthz`` and ``/readyz``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    app.state.runtime = runtime

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": runtime.settings.service_name}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """Readiness: started, migrated, consuming, and its database answers."""
        checks = await runtime.check()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    for router in routers:
        app.include_router(router)
    return app


def serve(create_app: Callable[[S], FastAPI], settings: S) -> None:
    """Run one service: logs configured, uvicorn on its port, graceful on SIGTERM."""
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
