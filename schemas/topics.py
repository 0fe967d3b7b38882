"""Every Kafka topic of the shop, in one place.

Keys are the aggregate id (order, product, user...), so the messages of one aggregate stay in
order on one partition. Each consuming service has its own dead-letter topic.
"""

from dataclasses import dataclass

PARTITIONS = 6
"""Six partitions: room for up to six replicas of a consumer group; order holds per key."""

DLQ_PARTITIONS = 1

RETENTION_HOURS = 168
"""A segment is deleted this long after its newest record (the broker's ``log.retention.hours``)."""
SEGMENT_ROLL_HOURS = 168
"""A segment is closed after at most this long (``log.roll.hours``), and only then may go."""
REDELIVERY_HOURS = RETENTION_HOURS + SEGMENT_ROLL_HOURS
"""How long after it was written a record may still be read again: the least time an inbox must
keep an id to absorb every redelivery."""


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

CONSUMED_TOPICS: dict[str, tuple[Topic, ...]] = {
    "user_svc": (USERS_COMMANDS,),
    "product_svc": (PRODUCTS_COMMANDS, ORDERS_EVENTS),
    "order_svc": (ORDERS_COMMANDS, PRODUCTS_EVENTS, INVENTORY_EVENTS, PAYMENTS_EVENTS),
    "payment_svc": (PAYMENTS_COMMANDS, ORDERS_EVENTS, INVENTORY_EVENTS),
    "notification_svc": (USERS_EVENTS, ORDERS_EVENTS, PAYMENTS_EVENTS),
    "inventory_svc": (INVENTORY_EVENTS,),
}
"""Who consumes what (docs/architecture.md's table of services); each service's consumer group
is its name."""

CONSUMING_SERVICES = tuple(CONSUMED_TOPICS)

SENT_TOPICS: dict[str, tuple[Topic, ...]] = {
    "gateway_svc": (USERS_COMMANDS, PRODUCTS_COMMANDS, ORDERS_COMMANDS, PAYMENTS_COMMANDS),
    "user_svc": (USERS_EVENTS,),
    "product_svc": (PRODUCTS_EVENTS, INVENTORY_EVENTS),
    "order_svc": (ORDERS_EVENTS,),
    "payment_svc": (PAYMENTS_EVENTS,),
    "notification_svc": (NOTIFICATIONS_EVENTS,),
}
"""Who writes what (besides each consuming service's dead-letter topic): a service's own events,
and the gateway's commands (sent on Kafka, or applied at once over HTTP)."""

WATCHED_TOPICS: dict[str, tuple[Topic, ...]] = {"gateway_svc": (ORDERS_EVENTS,)}
"""Topics read outside any consumer group: the gateway tails orders.events for order news."""


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
