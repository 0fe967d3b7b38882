"""A PaymentRefunded of version 1, as producers wrote it before refunds carried their reason,
is still told to its customer, with the reason its upcaster gives: published on payments.events
with kcat, or re-driven from notification_svc's dead letters once their cause is mended."""

import asyncio
import shutil
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from schemas.topics import PAYMENTS_EVENTS
from stack import dlq
from tests.e2e.conftest import Shop, eventually, launcher, publish_with_kcat, told

pytestmark = pytest.mark.skipif(
    shutil.which("kcat") is None, reason="publishes with kcat (apt-get install kcat)"
)


def refunded_v1(user_id: str, order_id: str) -> dict[str, Any]:
    """A PaymentRefunded as a producer from before version 2 wrote it: no reason."""
    return {
        "id": str(uuid.uuid4()),
        "type": "PaymentRefunded",
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": str(uuid.uuid4()),
        "causation_id": None,
        "data": {
            "payment_id": str(uuid.uuid4()),
            "order_id": order_id,
            "user_id": user_id,
            "amount": "39.80",
            "gateway_id": "sim_before_v2",
        },
    }


def test_a_v1_refund_published_with_kcat_is_told_with_the_reason_its_upcaster_gives(
    shop: Shop,
) -> None:
    customer = shop.customer("Gus")
    order_id = str(uuid.uuid4())

    publish_with_kcat(shop, PAYMENTS_EVENTS.name, order_id, refunded_v1(customer.id, order_id))

    assert eventually(lambda: told(customer, "PaymentRefunded")) == [
        f"Your payment of 39.80 for order {order_id} was refunded: Order cancelled."
    ]


def test_a_v1_refund_dead_lettered_then_redriven_is_told_with_the_reason_its_upcaster_gives(
    shop: Shop,
) -> None:
    customer = shop.customer("Hal")
    order_id = str(uuid.uuid4())
    message = refunded_v1(customer.id, order_id)
    refused = f"refuse_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(shop.pg_url("notification_svc"), autocommit=True) as db:
        # The cause to mend: notification_svc's database refuses this event's notification,
        # so its handler fails every try and the service dead-letters the record.
        db.execute(
            f"ALTER TABLE notifications ADD CONSTRAINT {refused}"
            f" CHECK (event_id <> '{message['id']}') NOT VALID"
        )
        try:
            publish_with_kcat(shop, PAYMENTS_EVENTS.name, order_id, message)
            letter = eventually(lambda: dead_letter_of(shop, str(message["id"])))
        finally:
            db.execute(f"ALTER TABLE notifications DROP CONSTRAINT IF EXISTS {refused}")
    assert letter.headers["type"] == "PaymentRefunded"
    assert letter.headers["dlq.topic"] == PAYMENTS_EVENTS.name
    assert f'violates check constraint "{refused}"' in letter.headers["dlq.reason"]
    assert told(customer, "PaymentRefunded") == []

    redriven = launcher(shop.env, "dlq", "redrive", "notification_svc", str(letter.offset))

    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    assert "re-drove 1 message(s) from notification_svc.dlq" in redriven.stdout
    assert eventually(lambda: told(customer, "PaymentRefunded")) == [
        f"Your payment of 39.80 for order {order_id} was refunded: Order cancelled."
    ]


def dead_letter_of(shop: Shop, message_id: str) -> dlq.DeadLetter | None:
    letters = asyncio.run(dlq.read(shop.kafka_access, "notification_svc"))
    return next((x for x in letters if message_id.encode() in (x.value or b"")), None)
