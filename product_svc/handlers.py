"""product_svc's message entry points: which message goes to which use case."""

from common.broker import Handlers
from common.db import SessionMaker
from schemas.topics import ORDERS_EVENTS, PRODUCTS_COMMANDS

TOPICS = (PRODUCTS_COMMANDS, ORDERS_EVENTS)


def handlers(sessionmaker: SessionMaker) -> Handlers:
    return {}
