"""payment_svc's composition root."""

import logging

from fastapi import FastAPI

from common.commands import command_router
from common.http import create_service_app
from common.runtime import ServiceRuntime
from payment_svc import api, handlers, models, services
from payment_svc.adapters import Faults, SimulatedProvider
from payment_svc.ports import PaymentProvider
from payment_svc.settings import Settings

log = logging.getLogger(__name__)


def create_provider(settings: Settings) -> PaymentProvider:
    match settings.payment_provider:
        case "simulator":
            return SimulatedProvider(
                settings.provider_ledger_url(), Faults.parse(settings.payment_provider_faults)
            )


def create_app(
    settings: Settings | None = None, *, provider: PaymentProvider | None = None
) -> FastAPI:
    """The service; ``provider`` replaces the one that ``settings`` name (tests pass their own)."""
    settings = settings or Settings()
    if provider is None:
        provider = create_provider(settings)
    runtime = ServiceRuntime(settings, models)
    sessionmaker = runtime.sessionmaker
    runtime.on_start("payment provider", provider.open)
    runtime.on_stop(provider.close)

    async def sweep() -> None:
        """Settle the charges left without an outcome (see services.settle_stale_charges)."""
        settled = await services.settle_stale_charges(
            sessionmaker, provider, older_than_s=settings.charge_settle_after_s
        )
        if settled:
            log.warning("settled %d charge(s) from the provider", settled)

    runtime.every("charge-sweep", settings.charge_sweep_interval_s, sweep)
    table = handlers.handlers(sessionmaker, runtime.reads, provider)
    runtime.consume(handlers.TOPICS, table)
    commands = command_router(table, handlers.APPLIED_AT_ONCE)
    return create_service_app(runtime, title="payment_svc", routers=[api.router, commands])
