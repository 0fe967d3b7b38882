from typing import ClassVar

from pydantic import Field, SecretStr

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "user_svc"
    default_http_port: ClassVar[int] = 8003

    shop_admin_email: str = ""
    shop_admin_password: SecretStr = SecretStr("")
    """The first admin account, created on start when both are set (SHOP_ADMIN_EMAIL/PASSWORD)."""

    password_hash_workers: int = Field(default=2, ge=1)
    """Passwords hashed or checked at once (PASSWORD_HASH_WORKERS), each in a thread of its own
    off the event loop; more wait their turn. About a fifth of a second of a core each."""
    password_hash_waiting: int = Field(default=8, ge=0)
    """Passwords that may wait for a worker (PASSWORD_HASH_WAITING); one more is answered 503 at
    once, instead of holding its caller's connection while the queue grows."""
