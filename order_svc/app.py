"""order_svc's composition root."""

from pathlib import Path

from fastapi import FastAPI

from common.http import create_service_app
from common.runtime import Runtime
from order_svc import api, handlers, models
from order_svc.settings import Settings


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
    runtime.consume(handlers.TOPICS, handlers.handlers(runtime.sessionmaker))
    return create_service_app(runtime, title="order_svc", routers=[api.router])
