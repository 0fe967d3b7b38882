"""inventory_svc's composition root."""

from fastapi import FastAPI

from common.http import create_service_app
from common.runtime import ServiceRuntime
from inventory_svc import api, handlers, models
from inventory_svc.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, models)
    runtime.consume(handlers.TOPICS, handlers.handlers(runtime.sessionmaker))
    return create_service_app(runtime, title="inventory_svc", routers=[api.router])
