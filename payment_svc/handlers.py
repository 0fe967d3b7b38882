"""payment_svc's message entry points: which message goes to which use case."""

from functools import partial

from common.handlers import Handlers, SetBased
from common.unit_of_work import SessionMaker
from payment_svc import services
from payment_svc.ports import PaymentProvider
from schemas.orders import OrderCancelled
from schemas.payments import AddPaymentMethod
from schemas.products import StockReserved
from schemas.topics import CONSUMED_TOPICS

TOPICS = CONSUMED_TOPICS["payment_svc"]
APPLIED_AT_ONCE = (AddPaymentMethod,)
"""The commands the gateway also sends over HTTP (``common.commands``), to answer with their
result."""


def handlers(
    sessionmaker: SessionMaker, autocommit: SessionMaker, provider: PaymentProvider
) -> Handlers:
    """``autocommit``: sessions whose statements commit at once (a charge's attempt is recorded
    before the provider is asked, outside the batch's transaction)."""
    return {
        AddPaymentMethod: partial(services.add_payment_method, sessionmaker),
        StockReserved: SetBased(partial(services.charge_order, sessionmaker, autocommit, provider)),
        OrderCancelled: SetBased(
            partial(services.refund_order, sessionmaker, autocommit, provider)
        ),
    }
