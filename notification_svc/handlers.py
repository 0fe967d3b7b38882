"""notification_svc's message entry points: which message goes to which use case."""

from functools import partial

from common.handlers import Handlers
from common.unit_of_work import SessionMaker
from notification_svc import services
from schemas.orders import OrderCancelled, OrderPlaced, OrderRejected, OrderShipped
from schemas.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from schemas.topics import CONSUMED_TOPICS
from schemas.users import UserRegistered, UserUpdated

TOPICS = CONSUMED_TOPICS["notification_svc"]


def handlers(sessionmaker: SessionMaker) -> Handlers:
    notify = partial(services.notify_user, sessionmaker)
    return {
        UserRegistered: partial(services.welcome_user, sessionmaker),
        UserUpdated: partial(services.update_contact, sessionmaker),
        OrderPlaced: notify,
        OrderRejected: notify,
        OrderCancelled: notify,
        OrderShipped: notify,
        PaymentSucceeded: notify,
        PaymentFailed: notify,
        PaymentRefunded: notify,
    }
