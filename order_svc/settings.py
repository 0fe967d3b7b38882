from typing import ClassVar

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "order_svc"
    default_http_port: ClassVar[int] = 8002
