"""payment_svc's message entry points: which message goes to which use case."""

from common.broker import Handlers
from common.db import SessionMaker
from schemas.topics import INVENTORY_EVENTS, ORDERS_EVENTS, PAYMENTS_COMMANDS

TOPICS = (PAYMENTS_COMMANDS, ORDERS_EVENTS, INVENTORY_EVENTS)


def handlers(sessionmaker: SessionMaker) -> Handlers:
    return {}
