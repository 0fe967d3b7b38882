from typing import ClassVar

from pydantic import Field, SecretStr

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "gateway_svc"
    default_http_port: ClassVar[int] = 8000

    jwt_secret: SecretStr = SecretStr("")
    """HS256 signing key (JWT_SECRET). Empty: a random key per process, so tokens die with it."""
    access_token_ttl_s: int = Field(default=900, ge=30)
    refresh_token_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)

    user_svc_url: str = "http://127.0.0.1:8003"
    product_svc_url: str = "http://127.0.0.1:8001"
    order_svc_url: str = "http://127.0.0.1:8002"
    payment_svc_url: str = "http://127.0.0.1:8004"
    notification_svc_url: str = "http://127.0.0.1:8005"
    inventory_svc_url: str = "http://127.0.0.1:8006"
    upstream_timeout_s: float = 5.0

    rate_limit_per_minute: int = Field(default=1200, ge=1)
    """Requests per client (the token's user, else the address) and minute."""
    rate_limit_burst: int | None = Field(default=None, ge=1)
    """Requests a client may send at once before the per-minute pace applies (RATE_LIMIT_BURST);
    by default a tenth of the per-minute limit."""
    login_attempts_per_minute: int = Field(default=10, ge=1)
    """Login attempts per email from one address and minute (LOGIN_ATTEMPTS_PER_MINUTE); an
    email takes ten times that from all addresses together, an address ten times that over all
    emails. An attempt counts before its password is checked."""
    registrations_per_minute: int = Field(default=10, ge=1)
    """Accounts opened per client address and minute (REGISTRATIONS_PER_MINUTE)."""
    max_in_flight: int = Field(default=512, ge=1)
    """Requests the gateway works on at once (MAX_IN_FLIGHT); one more is answered 503 with
    Retry-After at once instead of queueing (its memory bounded under overload). A request
    counts from its body's last byte until its answer; a long poll or a stream only while it is
    not waiting. /healthz, /readyz and /metrics are not counted."""
    max_body_bytes: int = 64 * 1024
    body_read_timeout_s: float = Field(default=10.0, gt=0)
    """A request body not received whole within this is answered 408 (BODY_READ_TIMEOUT_S)."""
    max_watchers: int = Field(default=1000, ge=1)
    """Long polls and event streams open at once (MAX_WATCHERS); one more is answered 503."""
    watchers_per_user: int = Field(default=4, ge=1)
    """Long polls and event streams one user (or address) may have open at once
    (WATCHERS_PER_USER); one more is answered 429."""
    write_wait_s: float = Field(default=5.0, ge=0)
    """How long a write waits for its service to apply it (WRITE_WAIT_S) before answering 202
    and leaving the command on Kafka."""
