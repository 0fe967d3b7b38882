"""notification_svc's rules: what each event tells its user, and when a failed send is retried."""

from dataclasses import dataclass
from decimal import Decimal

from schemas.orders import OrderCancelled, OrderPlaced, OrderRejected, OrderShipped
from schemas.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded

NotifiedEvent = (
    OrderPlaced
    | OrderRejected
    | OrderCancelled
    | OrderShipped
    | PaymentSucceeded
    | PaymentFailed
    | PaymentRefunded
)
"""The events a user hears about (besides registration); OrderPaid is not one: the payment's
own notification already says it."""

REGISTRATION = "Registration"

_SUBJECTS = {
    REGISTRATION: "Welcome to the shop",
    OrderPlaced.TYPE: "Your order was placed",
    OrderRejected.TYPE: "Your order was rejected",
    OrderCancelled.TYPE: "Your order was cancelled",
    OrderShipped.TYPE: "Your order has shipped",
    PaymentSucceeded.TYPE: "Payment received",
    PaymentFailed.TYPE: "Payment failed",
    PaymentRefunded.TYPE: "Payment refunded",
}

MAX_RETRY_DELAY_S = 3600.0


@dataclass(frozen=True)
class Draft:
    type: str
    message: str


def welcome(name: str) -> Draft:
    return Draft(REGISTRATION, f"Welcome to the shop, {name}!")


def describe(event: NotifiedEvent) -> Draft:
    """The notification of ``event``: its type and a short sentence for a person."""
    match event:
        case OrderPlaced():
            text = f"Your order {event.order_id} for {_money(event.total_price)} was placed."
        case OrderRejected():
            text = f"Your order {event.order_id} was rejected: {event.reason}."
        case OrderCancelled():
            text = f"Your order {event.order_id} was cancelled: {event.reason}."
        case OrderShipped():
            text = f"Your order {event.order_id} has shipped."
        case PaymentSucceeded():
            text = f"We received your payment of {_money(event.amount)} for order {event.order_id}."
        case PaymentFailed():
            text = (
                f"Your payment of {_money(event.amount)} for order {event.order_id} failed: "
                f"{event.reason}."
            )
        case PaymentRefunded():
            text = (
                f"Your payment of {_money(event.amount)} for order {event.order_id} was refunded: "
                f"{event.reason}."
            )
    return Draft(event.TYPE, text)


def subject(notification_type: str) -> str:
    return _SUBJECTS.get(notification_type, notification_type)


def body(name: str, message: str) -> str:
    return f"Hello {name},\n\n{message}\n\nThe shop\n"


@dataclass(frozen=True)
class Retry:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    pass


def after_failure(attempts: int, *, max_attempts: int, backoff_s: float) -> Retry | GiveUp:
    """After ``attempts`` failed sends: wait twice as long as last time, or give up."""
    if attempts >= max_attempts:
        return GiveUp()
    return Retry(min(backoff_s * 2 ** (attempts - 1), MAX_RETRY_DELAY_S))


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"
