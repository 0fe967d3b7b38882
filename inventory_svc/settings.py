from typing import ClassVar

from pydantic import Field

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "inventory_svc"
    default_http_port: ClassVar[int] = 8006

    consumer_fetch_wait_ms: int = Field(default=100, ge=0, le=10_000)
    """Off the order's path: batches gathered over up to 100 ms (see ServiceSettings)."""
    niceness: int = Field(default=10, ge=0, le=19)
    """Off the order's path: the cores go first to the services on it (see ServiceSettings)."""
