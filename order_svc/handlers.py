"""order_svc's message entry points: which message goes to which use case."""

from functools import partial

from common.broker import Handlers
from common.db import SessionMaker
from order_svc import services
from schemas.products import ProductCreated, ProductUpdated
from schemas.topics import INVENTORY_EVENTS, ORDERS_COMMANDS, PAYMENTS_EVENTS, PRODUCTS_EVENTS

TOPICS = (ORDERS_COMMANDS, PRODUCTS_EVENTS, INVENTORY_EVENTS, PAYMENTS_EVENTS)


def handlers(sessionmaker: SessionMaker) -> Handlers:
    return {
        ProductCreated: partial(services.remember_price, sessionmaker),
        ProductUpdated: partial(services.remember_price, sessionmaker),
    }
