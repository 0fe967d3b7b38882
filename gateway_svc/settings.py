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
    order_wait_max_s: float = 30.0
    max_in_flight: int = Field(default=512, ge=1)
    """Requests the gateway serves at once (MAX_IN_FLIGHT, long polls included); one more is
    answered 503 with Retry-After at once instead of queueing (its memory bounded under
    overload). /healthz, /readyz and /metrics are not counted."""
    max_body_bytes: int = 64 * 1024
