from typing import ClassVar, Self

from pydantic import Field, Secret, model_validator
from pydantic_core import PydanticCustomError

from common.settings import ServiceSettings
from user_svc.domain import Email, Password


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "user_svc"
    default_http_port: ClassVar[int] = 8003

    shop_admin_email: Email | None = None
    shop_admin_password: Secret[Password] | None = None
    """The first admin account (SHOP_ADMIN_EMAIL/PASSWORD), created at start before the service
    is ready: both or neither, each as a registration would take it."""

    password_hash_workers: int = Field(default=1, ge=1)
    """Passwords hashed or checked at once (PASSWORD_HASH_WORKERS), each in a thread of its own
    off the event loop; more wait their turn. Each takes 64 MiB while it runs, and Argon2 spreads
    it over four threads of its own already: on two cores one worker keeps both busy (a second
    gained little and cost its memory: bench/HISTORY.md)."""
    password_hash_waiting: int = Field(default=16, ge=0)
    """Passwords that may wait for a worker (PASSWORD_HASH_WAITING); one more is answered 503 at
    once, instead of holding its caller's connection while the queue grows."""

    @model_validator(mode="after")
    def _admin_whole(self) -> Self:
        if (self.shop_admin_email is None) != (self.shop_admin_password is None):
            raise PydanticCustomError(
                "admin_incomplete",
                "SHOP_ADMIN_EMAIL and SHOP_ADMIN_PASSWORD go together: set both, or neither",
            )
        return self
