from typing import ClassVar

import pytest

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "order_svc"
    default_http_port: ClassVar[int] = 8002


def test_each_service_gets_its_own_database_on_the_shared_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDER_SVC_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://shop:pw@db.internal:5432/postgres")
    url = Settings().service_database_url()
    assert url == "postgresql+psycopg://shop:pw@db.internal:5432/order_svc"


def test_a_per_service_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_SVC_DATABASE_URL", "postgresql+psycopg://o@elsewhere/orders")
    assert Settings().service_database_url() == "postgresql+psycopg://o@elsewhere/orders"


def test_defaults_match_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "HTTP_PORT", "ORDER_SVC_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.http_port == 8002
    assert settings.consumer_group == "order_svc"
