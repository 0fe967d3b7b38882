"""gateway_svc's composition root."""

from fastapi import FastAPI

from common.http import create_service_app
from common.runtime import Runtime
from gateway_svc.settings import Settings

DESCRIPTION = """The shop's public HTTP API. Commands travel over Kafka; reads come from the
service that owns the data. See ARCHITECTURE.md for the contracts."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings)
    return create_service_app(runtime, title="shop gateway", description=DESCRIPTION)
