from typing import ClassVar

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "product_svc"
    default_http_port: ClassVar[int] = 8001
