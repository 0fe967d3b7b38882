"""Every Kafka topic of the shop, in one place.

Keys are the aggregate id (order, product, user...), so the messages of one aggregate stay in
order on one partition. Each consuming service has its own dead-letter topic.
"""

from dataclasses import dataclass

PARTITIONS = 6
"""Six partitions: room for up to six replicas of a consumer group; order holds per key."""

DLQ_PARTITIONS = 1


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    partitions: int = PARTITIONS

    def __str__(self) -> str:
        return self.name


USERS_COMMANDS = Topic("users.commands")
USERS_EVENTS = Topic("users.events")
PRODUCTS_COMMANDS = Topic("products.commands")
PRODUCTS_EVENTS = Topic("products.events")
INVENTORY_EVENTS = Topic("inventory.events")
ORDERS_COMMANDS = Topic("orders.commands")
ORDERS_EVENTS = Topic("orders.events")
PAYMENTS_COMMANDS = Topic("payments.commands")
PAYMENTS_EVENTS = Topic("payments.events")
NOTIFICATIONS_EVENTS = Topic("notifications.events")

CONSUMING_SERVICES = (
    "user_svc",
    "product_svc",
    "order_svc",
    "payment_svc",
    "notification_svc",
    "inventory_svc",
)


def dead_letter_topic(service: str) -> Topic:
    """The dead-letter topic of one consuming service, e.g. ``order_svc.dlq``."""
    return Topic(f"{service}.dlq", DLQ_PARTITIONS)


DOMAIN_TOPICS = (
    USERS_COMMANDS,
    USERS_EVENTS,
    PRODUCTS_COMMANDS,
    PRODUCTS_EVENTS,
    INVENTORY_EVENTS,
    ORDERS_COMMANDS,
    ORDERS_EVENTS,
    PAYMENTS_COMMANDS,
    PAYMENTS_EVENTS,
    NOTIFICATIONS_EVENTS,
)
DEAD_LETTER_TOPICS = tuple(dead_letter_topic(service) for service in CONSUMING_SERVICES)
ALL_TOPICS = DOMAIN_TOPICS + DEAD_LETTER_TOPICS
