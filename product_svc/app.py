"""product_svc's composition root."""

from pathlib import Path

from fastapi import FastAPI

from common.commands import command_router
from common.http import create_service_app
from common.runtime import Runtime
from product_svc import api, handlers, models
from product_svc.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(
        settings,
        metadata=models.Base.metadata,
        migrations=Path(__file__).with_name("migrations"),
        outbox=models.Outbox,
        inbox=models.Inbox,
    )
    assert runtime.sessionmaker is not None
    table = handlers.handlers(runtime.sessionmaker)
    runtime.consume(handlers.TOPICS, table)
    commands = command_router(table, handlers.APPLIED_AT_ONCE)
    return create_service_app(runtime, title="product_svc", routers=[api.router, commands])
