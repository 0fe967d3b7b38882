import secrets
from typing import ClassVar

import pytest
from faststream.security import SASLScram512

from common.settings import ServiceSettings, from_environment
from stack.services import DEFAULT_ADMIN_EMAIL
from user_svc.settings import Settings as UserSettings


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
    assert settings.consumer_instance_id == "order_svc-1"


def test_each_replica_is_a_static_member_of_its_group_by_its_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CONSUMER_GROUP", "CONSUMER_REPLICA", "CONSUMER_INSTANCE_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONSUMER_REPLICA", "2")
    assert Settings().consumer_instance_id == "order_svc-2"
    assert Settings(consumer_group="orders-b").consumer_instance_id == "orders-b-2"
    monkeypatch.setenv("CONSUMER_INSTANCE_ID", "orders-east-1")
    assert Settings().consumer_instance_id == "orders-east-1"


def refusal(monkeypatch: pytest.MonkeyPatch, **environment: str) -> str:
    for name in ("SHOP_ADMIN_EMAIL", "SHOP_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as refused:
        from_environment(UserSettings)
    return str(refused.value.code)


def test_a_refused_setting_names_its_variable_and_why_but_never_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(
        monkeypatch,
        SHOP_ADMIN_EMAIL="admin@shop.test",
        SHOP_ADMIN_PASSWORD="s3cret!",
        HTTP_PORT="x",
    )
    assert message.splitlines()[0] == "user_svc refuses its settings:"
    assert "SHOP_ADMIN_EMAIL: value is not a valid email address" in message
    assert "special-use or reserved name" in message
    assert "SHOP_ADMIN_PASSWORD: String should have at least 8 characters" in message
    assert "HTTP_PORT: Input should be a valid integer" in message
    assert "s3cret!" not in message


def test_the_first_admin_is_refused_when_half_set(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, SHOP_ADMIN_EMAIL="admin@example.com")
    assert "SHOP_ADMIN_EMAIL and SHOP_ADMIN_PASSWORD go together" in message


def test_the_launchers_own_first_admin_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    password = secrets.token_urlsafe(24)  # as StackConfig.secret makes it
    monkeypatch.setenv("SHOP_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    monkeypatch.setenv("SHOP_ADMIN_PASSWORD", password)
    settings = from_environment(UserSettings)
    assert settings.shop_admin_email == DEFAULT_ADMIN_EMAIL
    assert settings.shop_admin_password is not None
    assert settings.shop_admin_password.get_secret_value() == password
    assert password not in repr(settings)


def test_a_secured_kafka_without_its_credentials_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "order_svc")
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as refused:
        from_environment(Settings)
    assert "KAFKA_SASL_PASSWORD: required with SASL_SSL" in str(refused.value)
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "GSSAPI")
    with pytest.raises(SystemExit) as refused:
        from_environment(Settings)
    assert "KAFKA_SASL_MECHANISM: 'GSSAPI' is not one of" in str(refused.value)


def test_the_ecosystems_kafka_settings_reach_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "b-1.example:9096,b-2.example:9096")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "order_svc")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    access = from_environment(Settings).kafka_access()
    options = access.client_options()
    assert options["bootstrap_servers"] == ["b-1.example:9096", "b-2.example:9096"]
    assert (options["security_protocol"], options["sasl_mechanism"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "order_svc",
        "s3cret",
    )
    assert options["ssl_context"] is not None
    security = access.faststream_security()
    assert isinstance(security, SASLScram512) and security.use_ssl
    assert "s3cret" not in repr(from_environment(Settings))  # a secret, never printed
