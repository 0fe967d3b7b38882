"""product_svc's composition root."""

from fastapi import FastAPI

from common.commands import command_router
from common.http import create_service_app
from common.runtime import ServiceRuntime
from product_svc import api, handlers, models
from product_svc.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, models)
    table = handlers.handlers(runtime.sessionmaker)
    runtime.consume(handlers.TOPICS, table)
    commands = command_router(table, handlers.APPLIED_AT_ONCE)
    return create_service_app(runtime, title="product_svc", routers=[api.router, commands])
