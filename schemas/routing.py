"""Which service applies which message, and who writes each: the message-level side of
``schemas.topics``' tables, for the AsyncAPI document. A unit test holds ``RECEIVES`` to every
service's handler table."""

from schemas import orders, payments, products, users
from schemas.envelope import Message, contracts, latest
from schemas.topics import SENT_TOPICS, Topic

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
"""The messages each consuming service applies, in its consumer group (its handler table); it
skips the other messages of the topics it reads."""


def sender(message: type[Message]) -> str:
    """The service that writes ``message`` (every version of it)."""
    return next(service for service, topics in SENT_TOPICS.items() if message.TOPIC in topics)


def receivers(message: type[Message]) -> list[str]:
    """The services that apply ``message`` (any version: older ones are upcast)."""
    newest = latest(message.TYPE)
    return [service for service, handled in RECEIVES.items() if newest in handled]


def messages_on(topic: Topic) -> list[type[Message]]:
    """Every version of every message of ``topic``, by type then version."""
    return sorted(
        (cls for cls in contracts() if topic == cls.TOPIC), key=lambda cls: (cls.TYPE, cls.VERSION)
    )
