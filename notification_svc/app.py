"""notification_svc's composition root."""

from fastapi import FastAPI

from common.http import create_service_app
from common.runtime import ServiceRuntime
from notification_svc import api, handlers, models
from notification_svc.adapters import MailboxSender
from notification_svc.ports import NotificationSender
from notification_svc.sending import Dispatcher
from notification_svc.settings import Settings


def create_app(
    settings: Settings | None = None, *, sender: NotificationSender | None = None
) -> FastAPI:
    """The service; ``sender`` replaces the mailbox (tests pass a fake). The app's
    ``state.dispatcher`` is the sending loop, whose one step tests call."""
    settings = settings or Settings()
    if sender is None:
        sender = MailboxSender(settings.mailbox_dir)
    runtime = ServiceRuntime(settings, models)
    runtime.consume(handlers.TOPICS, handlers.handlers(runtime.sessionmaker))
    dispatcher = Dispatcher(runtime.sessionmaker, sender, settings)
    if settings.sending_enabled:
        runtime.run_in_background("notification-sender", dispatcher.run)
    app = create_service_app(runtime, title="notification_svc", routers=[api.router])
    app.state.dispatcher = dispatcher
    return app
