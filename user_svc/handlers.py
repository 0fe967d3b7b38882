"""user_svc's message entry points: which message goes to which use case."""

from functools import partial

from common.handlers import Handlers
from common.unit_of_work import SessionMaker
from schemas.topics import CONSUMED_TOPICS
from schemas.users import AddAddress, UpdateUser
from user_svc import services

TOPICS = CONSUMED_TOPICS["user_svc"]
APPLIED_AT_ONCE = (AddAddress,)
"""The commands the gateway also sends over HTTP (``common.commands``), to answer with their
result."""


def handlers(sessionmaker: SessionMaker) -> Handlers:
    return {
        UpdateUser: partial(services.update_user, sessionmaker),
        AddAddress: partial(services.add_address, sessionmaker),
    }
