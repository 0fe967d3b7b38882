"""Who sends and who receives each message: the table behind the AsyncAPI document
(:mod:`schemas.asyncapi`). A unit test holds ``RECEIVES`` to every service's handler table."""

from schemas import notifications, orders, payments, products, users
from schemas.envelope import Message, contracts, latest
from schemas.topics import (
    CONSUMED_TOPICS,
    INVENTORY_EVENTS,
    NOTIFICATIONS_EVENTS,
    ORDERS_COMMANDS,
    ORDERS_EVENTS,
    PAYMENTS_COMMANDS,
    PAYMENTS_EVENTS,
    PRODUCTS_COMMANDS,
    PRODUCTS_EVENTS,
    USERS_COMMANDS,
    USERS_EVENTS,
    Topic,
)

SENDS: dict[str, tuple[Topic, ...]] = {
    "gateway_svc": (USERS_COMMANDS, PRODUCTS_COMMANDS, ORDERS_COMMANDS, PAYMENTS_COMMANDS),
    "user_svc": (USERS_EVENTS,),
    "product_svc": (PRODUCTS_EVENTS, INVENTORY_EVENTS),
    "order_svc": (ORDERS_EVENTS,),
    "payment_svc": (PAYMENTS_EVENTS,),
    "notification_svc": (NOTIFICATIONS_EVENTS,),
}
"""The topics each service writes every message of (besides its dead-letter topic): a service's
own events, and the gateway's commands, which it sends on Kafka or has applied at once."""

RECEIVES: dict[str, tuple[type[Message], ...]] = {
    "user_svc": (users.UpdateUser, users.AddAddress),
    "product_svc": (
        products.CreateCategory,
        products.CreateProduct,
        products.UpdateProduct,
        products.AddProductImage,
        products.RestockProduct,
        orders.OrderPlaced,
        orders.OrderCancelled,
    ),
    "order_svc": (
        orders.PlaceOrder,
        orders.CancelOrder,
        orders.ShipOrder,
        products.ProductCreated,
        products.ProductUpdated,
        products.StockReservationFailed,
        payments.PaymentSucceeded,
        payments.PaymentFailed,
    ),
    "payment_svc": (payments.AddPaymentMethod, products.StockReserved, orders.OrderCancelled),
    "notification_svc": (
        users.UserRegistered,
        users.UserUpdated,
        orders.OrderPlaced,
        orders.OrderRejected,
        orders.OrderCancelled,
        orders.OrderShipped,
        payments.PaymentSucceeded,
        payments.PaymentFailed,
        payments.PaymentRefunded,
    ),
    "inventory_svc": (products.StockChanged,),
}
"""The messages each consuming service applies (its handler table), in its consumer group; the
other messages of the topics it reads it skips."""

WATCHES: dict[str, tuple[Topic, ...]] = {"gateway_svc": (ORDERS_EVENTS,)}
"""Topics read outside any consumer group (the gateway tails orders.events for order news)."""

SERVICES = tuple(SENDS)


def sender(message: type[Message]) -> str:
    """The service that writes ``message`` (every version of it)."""
    return next(service for service, topics in SENDS.items() if message.TOPIC in topics)


def receivers(message: type[Message]) -> list[str]:
    """The services that apply ``message`` (any version: older ones are upcast)."""
    newest = latest(message.TYPE)
    return [service for service, handled in RECEIVES.items() if newest in handled]


def messages_on(topic: Topic) -> list[type[Message]]:
    """Every version of every message of ``topic``, by type then version."""
    return sorted(
        (cls for cls in contracts() if topic == cls.TOPIC), key=lambda cls: (cls.TYPE, cls.VERSION)
    )


def _check() -> None:
    for service, handled in RECEIVES.items():
        topics = {cls.TOPIC for cls in handled}
        if topics != set(CONSUMED_TOPICS[service]):
            raise AssertionError(f"{service} handles messages of {topics}, consumes another set")


_check()
assert notifications is not None  # imported to register its contracts
