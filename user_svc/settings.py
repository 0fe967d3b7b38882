from typing import ClassVar

from pydantic import SecretStr

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "user_svc"
    default_http_port: ClassVar[int] = 8003

    shop_admin_email: str = ""
    shop_admin_password: SecretStr = SecretStr("")
    """The first admin account, created on start when both are set (SHOP_ADMIN_EMAIL/PASSWORD)."""
