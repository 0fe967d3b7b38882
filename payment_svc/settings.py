from typing import ClassVar, Literal

from pydantic import Field, field_validator
from sqlalchemy.engine import make_url

from common.settings import ServiceSettings
from payment_svc.adapters import Faults


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "payment_svc"
    default_http_port: ClassVar[int] = 8004

    payment_provider: Literal["simulator"] = "simulator"
    """The adapter behind the PaymentProvider port; the simulator declines ``tok_decline``."""
    payment_provider_database_url: str = ""
    """The simulator's own ledger; defaults to a database named ``payment_provider`` on the
    server of ``DATABASE_URL``."""
    payment_provider_faults: str = ""
    """The simulator's faults at start, e.g. ``error_after_capture=0.1,slow_ms=20`` (see
    ``payment_svc.adapters.Faults``); ``python -m stack provider-faults`` switches them later."""
    charge_settle_after_s: float = Field(default=10.0, gt=0)
    """A charge attempt still without a recorded outcome this long after it began is settled
    from the provider by its key (the sweep), unless a delivery settles it first."""
    charge_sweep_interval_s: float = Field(default=5.0, gt=0)
    """How often the sweep looks for such charges."""

    @field_validator("payment_provider_faults")
    @classmethod
    def _faults_readable(cls, spec: str) -> str:
        Faults.parse(spec)
        return spec

    def provider_ledger_url(self) -> str:
        if self.payment_provider_database_url:
            return self.payment_provider_database_url
        return ledger_url_beside(self.database_url)


LEDGER_DATABASE = "payment_provider"


def ledger_url_beside(database_url: str) -> str:
    """The simulated provider's ledger on the server of ``database_url``."""
    return (
        make_url(database_url).set(database=LEDGER_DATABASE).render_as_string(hide_password=False)
    )
