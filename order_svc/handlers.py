"""order_svc's message entry points: which message goes to which use case."""

from functools import partial

from common.handlers import Handlers, SetBased
from common.unit_of_work import SessionMaker
from order_svc import services
from schemas.orders import CancelOrder, PlaceOrder, ShipOrder
from schemas.payments import PaymentFailed, PaymentSucceeded
from schemas.products import ProductCreated, ProductUpdated, StockReservationFailed
from schemas.topics import CONSUMED_TOPICS

TOPICS = CONSUMED_TOPICS["order_svc"]


def handlers(sessionmaker: SessionMaker) -> Handlers:
    return {
        ProductCreated: partial(services.remember_price, sessionmaker),
        ProductUpdated: partial(services.remember_price, sessionmaker),
        PlaceOrder: SetBased(partial(services.place_order, sessionmaker)),
        CancelOrder: SetBased(partial(services.cancel_order, sessionmaker)),
        ShipOrder: SetBased(partial(services.ship_order, sessionmaker)),
        StockReservationFailed: partial(services.cancel_for_shortage, sessionmaker),
        PaymentSucceeded: SetBased(partial(services.mark_paid, sessionmaker)),
        PaymentFailed: SetBased(partial(services.cancel_for_failed_payment, sessionmaker)),
    }
