"""user_svc's composition root."""

import logging

from fastapi import FastAPI

from common.commands import command_router
from common.http import create_service_app
from common.runtime import ServiceRuntime
from user_svc import api, handlers, models, services
from user_svc.passwords import Passwords
from user_svc.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, models)
    table = handlers.handlers(runtime.sessionmaker)
    runtime.consume(handlers.TOPICS, table)
    sessionmaker = runtime.sessionmaker
    passwords = Passwords(settings.password_hash_workers, settings.password_hash_waiting)
    runtime.on_stop(passwords.close)
    if settings.shop_admin_email is not None and settings.shop_admin_password is not None:
        email, password = settings.shop_admin_email, settings.shop_admin_password

        async def create_first_admin() -> None:
            if await services.ensure_admin(
                sessionmaker, passwords, email=email, password=password.get_secret_value()
            ):
                log.info("created the first admin account %s", email)

        runtime.on_start("the first admin account", create_first_admin)
    commands = command_router(table, handlers.APPLIED_AT_ONCE)
    app = create_service_app(runtime, title="user_svc", routers=[api.router, commands])
    app.state.passwords = passwords
    return app
