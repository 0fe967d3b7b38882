"""inventory_svc's message entry points: which message goes to which use case."""

from functools import partial

from common.handlers import Handlers
from common.unit_of_work import SessionMaker
from inventory_svc import services
from schemas.products import StockChanged
from schemas.topics import CONSUMED_TOPICS

TOPICS = CONSUMED_TOPICS["inventory_svc"]


def handlers(sessionmaker: SessionMaker) -> Handlers:
    return {StockChanged: partial(services.record_movement, sessionmaker)}
