from typing import ClassVar, Literal

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "payment_svc"
    default_http_port: ClassVar[int] = 8004

    payment_provider: Literal["simulator"] = "simulator"
    """The adapter behind the PaymentProvider port; the simulator declines ``tok_decline``."""
