"""payment_svc's composition root."""

from pathlib import Path

from fastapi import FastAPI

from common.commands import command_router
from common.http import create_service_app
from common.runtime import Runtime
from payment_svc import api, handlers, models
from payment_svc.adapters import SimulatedProvider
from payment_svc.ports import PaymentProvider
from payment_svc.settings import Settings


def create_provider(settings: Settings) -> PaymentProvider:
    match settings.payment_provider:
        case "simulator":
            return SimulatedProvider()


def create_app(
    settings: Settings | None = None, *, provider: PaymentProvider | None = None
) -> FastAPI:
    """The service; ``provider`` replaces the one that ``settings`` name (tests pass a fake)."""
    settings = settings or Settings()
    if provider is None:
        provider = create_provider(settings)
    runtime = Runtime(
        settings,
        metadata=models.Base.metadata,
        migrations=Path(__file__).with_name("migrations"),
        outbox=models.Outbox,
        inbox=models.Inbox,
    )
    assert runtime.sessionmaker is not None
    table = handlers.handlers(runtime.sessionmaker, provider)
    runtime.consume(handlers.TOPICS, table)
    commands = command_router(table, handlers.APPLIED_AT_ONCE)
    return create_service_app(runtime, title="payment_svc", routers=[api.router, commands])
