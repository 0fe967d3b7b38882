"""The app factory every service uses: lifespan, health and readiness, errors, and serving."""

import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from common import collector, tracing
from common.db import ReadPool
from common.logs import configure_logging
from common.metrics import CONTENT_TYPE
from common.runtime import Runtime, ServiceRuntime
from common.settings import ServiceSettings, from_environment
from common.unit_of_work import SessionMaker

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)


async def _sessionmaker(request: Request) -> SessionMaker:
    # async, like every dependency here: FastAPI runs a plain ``def`` one in a worker thread.
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime.sessionmaker


Sessions = Annotated[SessionMaker, Depends(_sessionmaker)]
"""The service's sessionmaker, for an HTTP route: ``async def route(sessions: Sessions)``."""


async def _reads(request: Request) -> SessionMaker:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime.reads


Reads = Annotated[SessionMaker, Depends(_reads)]
"""Sessions for a route that only reads: each statement runs on its own (autocommit), which
spares the BEGIN and ROLLBACK round trips; under READ COMMITTED every statement sees its own
snapshot anyway."""


async def _read_pool(request: Request) -> ReadPool:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime.read_pool


ReadConnections = Annotated[ReadPool, Depends(_read_pool)]
"""Connections for a route's hot read with a :class:`common.statements.Direct` statement
(``statement.rows_read(pool, ...)``), without an SQLAlchemy session."""


def serialized(model: BaseModel) -> Response:
    """A model the route built itself, as JSON serialized once, by pydantic: for a route that
    answers a page of a list (its decorator names the model, for the OpenAPI document).
    Returned as a model, FastAPI dumps it to a dict, validates that again against the route's
    model, makes it JSON-able and encodes it with ``json.dumps``."""
    return Response(model.model_dump_json(), media_type="application/json")


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: renders any Python string, even a lone
    surrogate that a client sent, which UTF-8 cannot encode."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    """422 naming each field at fault (``loc``) and why; the input is not echoed back (it may
    be a password, or text that no encoding can carry)."""
    errors = [
        {key: error[key] for key in ("type", "loc", "msg", "ctx") if key in error}
        for error in exc.errors()
    ]
    return AsciiJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def create_service_app(
    runtime: Runtime,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    description: str = "",
) -> FastAPI:
    """A FastAPI app whose lifespan runs ``runtime``; with ``/healthz``, ``/readyz`` and
    ``/metrics`` (the runtime's registry, :mod:`common.metrics`). Served by :func:`serve`, the
    process's startup heap is frozen once the runtime has started (see :mod:`common.collector`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if app.state.freeze_heap:
            collector.freeze_startup_heap()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    if tracing.enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    app.state.runtime = runtime
    app.state.freeze_heap = False

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": runtime.settings.service_name}

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def prometheus() -> Response:
        """Prometheus metrics of the service (:mod:`common.metrics`): its consumers (counters,
        batch and hop histograms, dead letters by reason), its outbox relay, what else it
        counts (the gateway: requests by route and status), the garbage collector's pauses and
        the process's own."""
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """Readiness: started, migrated, consuming, and its database answers."""
        checks = await runtime.check()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.exception_handler(RequestValidationError)
    async def unprocessable(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_request(exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    for router in routers:
        app.include_router(router)
    return app


def serve(create_app: Callable[[S], FastAPI], settings_class: type[S]) -> None:
    """Run one service: its settings from the environment (a refused one ends the process,
    naming its variable), logs configured, uvicorn on its port, graceful on SIGTERM."""
    settings = from_environment(settings_class)
    configure_logging(settings.service_name, settings.log_level)
    tracing.configure(settings.service_name)
    if settings.niceness:
        os.nice(settings.niceness)
    collector.count_pauses()
    app = create_app(settings)
    app.state.freeze_heap = True  # this process is the service's own: see common.collector
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
