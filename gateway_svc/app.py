"""gateway_svc's composition root."""

import logging

from fastapi import FastAPI

from common import tracing
from common.http import create_service_app
from common.runtime import Runtime
from gateway_svc import middleware
from gateway_svc.api import (
    accounts,
    asyncapi,
    catalog,
    order_cancel_ship,
    order_placement,
    order_reads,
)
from gateway_svc.auth import Tokens
from gateway_svc.clients import Upstreams
from gateway_svc.facts import Facts
from gateway_svc.ratelimit import RateLimiter
from gateway_svc.settings import Settings
from gateway_svc.watch import OrderWatch, Watchers

log = logging.getLogger(__name__)

DESCRIPTION = """The shop's public HTTP API. Commands travel over Kafka (answers 202 with the new
resource's id once Kafka holds the command); reads come from the service that owns the data.
Authenticate with `Authorization: Bearer <access_token>` from `POST /auth/login`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if tracing.enabled():
        tracing.start_traces_here()
    runtime = Runtime(settings)
    upstreams = Upstreams(settings)
    watch = OrderWatch(settings.kafka_access())
    runtime.run_in_background("order-watch", watch.run)
    runtime.on_stop(upstreams.close)
    tokens = Tokens(settings)
    if tokens.ephemeral:
        log.warning(
            "JWT_SECRET is not set: tokens are signed with a key that dies with this process"
        )

    metrics = middleware.Metrics(runtime.metrics.registry)
    app = create_service_app(
        runtime,
        title="shop gateway",
        description=DESCRIPTION,
        routers=[
            accounts.router,
            catalog.router,
            order_placement.router,
            order_reads.router,
            order_cancel_ship.router,
            asyncapi.router,
        ],
    )
    app.state.tokens = tokens
    app.state.upstreams = upstreams
    app.state.watch = watch
    app.state.watchers = Watchers(
        settings.max_watchers,
        settings.watchers_per_user,
        per_address=settings.watchers_per_user * 5,
    )
    app.state.placements = Watchers(settings.max_watchers, per_user=16)
    app.state.facts = Facts()
    app.state.login_throttle = accounts.LoginThrottle(settings.login_attempts_per_minute)
    app.state.registrations = RateLimiter(
        settings.registrations_per_minute, burst=settings.registrations_per_minute
    )
    middleware.install(
        app,
        tokens=tokens,
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_read_timeout_s=settings.body_read_timeout_s,
        max_in_flight=settings.max_in_flight,
    )
    return app
