"""payment_svc on the real broker and database, driven by real envelopes on its topics: payment
methods, the charge on StockReserved, the refund on OrderCancelled, their idempotence, charges
settled from the provider's own ledger when payment_svc lost their outcome, and its HTTP read
API."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID, uuid4

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from common.db import libpq_url
from common.handlers import Handlers
from common.unit_of_work import batch_transaction
from payment_svc import domain, handlers, services, statements
from payment_svc.adapters import Faults, SimulatedProvider, simulated_reference
from payment_svc.app import create_app, create_provider
from payment_svc.models import CancelledOrder, Inbox, Outbox, Payment, PaymentMethod, Transaction
from payment_svc.ports import ChargeResult, RefundResult
from payment_svc.reconcile import reconcile
from payment_svc.settings import Settings
from schemas.envelope import Envelope
from schemas.orders import OrderCancelled
from schemas.payments import REFUNDED_BEFORE_V2, AddPaymentMethod
from schemas.products import ItemQuantity, StockReserved
from schemas.topics import PAYMENTS_EVENTS, dead_letter_topic
from tests.conftest import Infra, eventually, unique
from tests.integration.conftest import (
    InProcess,
    apply_as_one_batch,
    in_inbox,
    in_process,
    read_to_end,
    send,
    service_settings,
)


class SpyProvider(SimulatedProvider):
    """The simulator (with its ledger), also counting what it is asked."""

    def __init__(self, ledger_url: str) -> None:
        super().__init__(ledger_url)
        self.ledger_url = ledger_url
        self.asked_charges: list[str] = []
        self.asked_refunds: list[str] = []

    async def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        self.asked_charges.append(idempotency_key)
        return await super().charge(idempotency_key=idempotency_key, amount=amount, token=token)

    async def refund(
        self, *, reference: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        self.asked_refunds.append(idempotency_key)
        return await super().refund(
            reference=reference, amount=amount, idempotency_key=idempotency_key
        )


@dataclass(frozen=True)
class PaymentService(InProcess):
    provider: SpyProvider


@pytest.fixture(scope="module")
async def payments(infra: Infra) -> AsyncIterator[PaymentService]:
    """One payment_svc for the module; every test works on its own users and orders."""
    # the tests run the sweep themselves (sweep())
    settings = service_settings(infra, Settings, charge_settle_after_s=3600)
    ledger = make_url(infra.database_url).set(database=unique("payment_provider"))
    provider = SpyProvider(ledger.render_as_string(hide_password=False))
    async with in_process(create_app(settings, provider=provider)) as service:
        yield PaymentService(service.app, service.runtime, service.http, provider)


async def processed(payments: PaymentService, envelope: Envelope) -> None:
    await in_inbox(payments.runtime, Inbox, envelope)


async def published(payments: PaymentService, infra: Infra, key: UUID) -> list[Envelope]:
    """Everything payment_svc published on payments.events under ``key``, once its outbox is
    empty (each row is deleted only after Kafka acknowledged it)."""

    async def outbox_empty() -> bool:
        async with payments.runtime.sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(Outbox)) == 0

    await eventually(outbox_empty)
    records = await read_to_end(infra.kafka_access, PAYMENTS_EVENTS)
    return [Envelope.model_validate_json(r.value) for r in records if r.key == str(key).encode()]


async def payment_method(
    payments: PaymentService, producer: AIOKafkaProducer, user_id: UUID, token: str = "tok_visa"
) -> UUID:
    command = AddPaymentMethod(
        payment_method_id=uuid4(), user_id=user_id, method="Credit Card", token=token
    )
    await processed(payments, await send(producer, command))
    return command.payment_method_id


def reserved(user_id: UUID, method_id: UUID, total: str = "39.80") -> StockReserved:
    return StockReserved(
        order_id=uuid4(),
        user_id=user_id,
        items=(ItemQuantity(product_id=uuid4(), quantity=2),),
        total_price=Decimal(total),
        payment_method_id=method_id,
    )


async def reservation(
    payments: PaymentService, producer: AIOKafkaProducer, total: str
) -> StockReserved:
    """Stock reserved for an order of a new buyer, paid with a card of the buyer's own."""
    buyer = uuid4()
    return reserved(buyer, await payment_method(payments, producer, buyer), total)


def cancelled(event: StockReserved, reason: str = "Cancelled by customer") -> OrderCancelled:
    return OrderCancelled(
        order_id=event.order_id, user_id=event.user_id, reason=reason, items=event.items
    )


async def payment_of(payments: PaymentService, order_id: UUID) -> Payment | None:
    async with payments.runtime.sessionmaker() as session:
        return await session.scalar(select(Payment).where(Payment.order_id == order_id))


async def transactions_of(payments: PaymentService, order_id: UUID) -> list[Transaction]:
    async with payments.runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(Transaction)
            .join(Payment, Payment.id == Transaction.payment_id)
            .where(Payment.order_id == order_id)
            .order_by(Transaction.created_at)
        )
        return list(rows)


def own(payments: PaymentService) -> tuple[Handlers, type[Inbox]]:
    """payment_svc's handlers on this service's database and provider, and its inbox."""
    table = handlers.handlers(
        payments.runtime.sessionmaker, payments.runtime.reads, payments.provider
    )
    return table, Inbox


def test_the_simulator_is_the_provider_when_settings_name_no_other() -> None:
    assert isinstance(create_provider(Settings()), SimulatedProvider)


async def test_stock_reserved_charges_and_emits_payment_succeeded_when_method_is_the_buyers(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    method_id = await payment_method(payments, producer, buyer)
    event = reserved(buyer, method_id, "39.80")

    sent = await send(producer, event)
    await processed(payments, sent)

    payment = await payment_of(payments, event.order_id)
    assert payment is not None
    assert (payment.status, payment.amount, payment.user_id) == ("Paid", Decimal("39.80"), buyer)
    [charge] = await transactions_of(payments, event.order_id)
    assert (charge.kind, charge.status, charge.amount) == ("Charge", "Paid", Decimal("39.80"))
    assert charge.gateway_id.startswith("sim_")
    [succeeded] = await published(payments, infra, event.order_id)
    assert succeeded.type == "PaymentSucceeded"
    assert succeeded.data == {
        "payment_id": str(payment.id),
        "order_id": str(event.order_id),
        "user_id": str(buyer),
        "amount": "39.80",
        "gateway_id": charge.gateway_id,
    }
    assert succeeded.correlation_id == sent.correlation_id
    assert succeeded.causation_id == sent.id


async def test_read_payment_answers_the_payment_and_its_charge_when_the_order_is_paid(
    payments: PaymentService, producer: AIOKafkaProducer
) -> None:
    event = await reservation(payments, producer, "39.80")
    await processed(payments, await send(producer, event))

    answer = await payments.http.get(f"/orders/{event.order_id}/payment")

    payment = await payment_of(payments, event.order_id)
    [charge] = await transactions_of(payments, event.order_id)
    assert payment is not None and answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["amount"], body["payment_id"]) == (
        "Paid",
        "39.80",
        str(payment.id),
    )
    assert [
        (t["kind"], t["gateway_id"], t["amount"], t["status"]) for t in body["transactions"]
    ] == [("Charge", charge.gateway_id, "39.80", "Paid")]


async def test_stock_reserved_records_failed_payment_when_the_card_is_declined(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    method_id = await payment_method(payments, producer, buyer, token="tok_decline")
    event = reserved(buyer, method_id, "10.00")

    await processed(payments, await send(producer, event))

    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Failed"
    [charge] = await transactions_of(payments, event.order_id)
    assert (charge.kind, charge.status) == ("Charge", "Failed")
    [failed] = await published(payments, infra, event.order_id)
    assert failed.type == "PaymentFailed"
    assert failed.data["reason"] == "card declined"
    assert failed.data["amount"] == "10.00"


async def test_order_cancelled_refunds_nothing_when_the_card_was_declined(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    method_id = await payment_method(payments, producer, buyer, token="tok_decline")
    event = reserved(buyer, method_id, "10.00")
    await processed(payments, await send(producer, event))

    await processed(payments, await send(producer, cancelled(event, "payment failed")))

    assert domain.refund_key(event.order_id) not in payments.provider.asked_refunds
    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Failed"
    assert [e.type for e in await published(payments, infra, event.order_id)] == ["PaymentFailed"]


async def test_stock_reserved_charges_once_when_delivered_twice(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    method_id = await payment_method(payments, producer, buyer)
    event = reserved(buyer, method_id)

    sent = await send(producer, event)
    await send(producer, event, envelope=sent)
    # The same event under a new id, on the same partition after the duplicate: once it is
    # applied, so is the duplicate.
    await processed(payments, await send(producer, event))

    assert payments.provider.asked_charges.count(domain.charge_key(event.order_id)) == 1
    assert len(await transactions_of(payments, event.order_id)) == 1
    events = await published(payments, infra, event.order_id)
    assert [e.type for e in events] == ["PaymentSucceeded"]


async def test_order_cancelled_refunds_once_and_emits_payment_refunded_with_its_reason_when_paid(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    method_id = await payment_method(payments, producer, buyer)
    event = reserved(buyer, method_id, "25.00")
    await processed(payments, await send(producer, event))
    paid = await payment_of(payments, event.order_id)
    assert paid is not None and paid.status == "Paid"

    cancellation = cancelled(event, "Cancelled by an admin")
    sent = await send(producer, cancellation)
    await send(producer, cancellation, envelope=sent)
    await processed(payments, await send(producer, cancellation))

    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Refunded"
    assert payments.provider.asked_refunds.count(domain.refund_key(event.order_id)) == 1
    charge, refund = await transactions_of(payments, event.order_id)
    assert (charge.kind, refund.kind) == ("Charge", "Refund")
    assert (refund.status, refund.amount) == ("Refunded", Decimal("25.00"))
    assert refund.gateway_id != charge.gateway_id
    events = await published(payments, infra, event.order_id)
    assert [e.type for e in events] == ["PaymentSucceeded", "PaymentRefunded"]
    refunded = events[-1]
    assert refunded.version == 2
    assert refunded.data == {
        "payment_id": str(payment.id),
        "order_id": str(event.order_id),
        "user_id": str(buyer),
        "amount": "25.00",
        "gateway_id": refund.gateway_id,
        "reason": "Cancelled by an admin",
    }
    assert refunded.correlation_id == sent.correlation_id

    body = (await payments.http.get(f"/orders/{event.order_id}/payment")).json()
    assert body["status"] == "Refunded"
    assert [t["kind"] for t in body["transactions"]] == ["Charge", "Refund"]


async def test_stock_reserved_charges_nothing_when_the_order_was_cancelled_first(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    method_id = await payment_method(payments, producer, buyer)
    event = reserved(buyer, method_id)

    await processed(payments, await send(producer, cancelled(event, "out of stock: Mug")))
    await processed(payments, await send(producer, event))

    assert await payment_of(payments, event.order_id) is None
    assert domain.charge_key(event.order_id) not in payments.provider.asked_charges
    async with payments.runtime.sessionmaker() as session:
        assert await session.get(CancelledOrder, event.order_id) is not None
    assert await published(payments, infra, event.order_id) == []
    answer = await payments.http.get(f"/orders/{event.order_id}/payment")
    assert answer.status_code == 404


async def test_stock_reserved_emits_payment_failed_when_the_method_is_another_users_or_unknown(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    owner, buyer = uuid4(), uuid4()
    others = reserved(buyer, await payment_method(payments, producer, owner))
    unknown = reserved(buyer, uuid4())

    await processed(payments, await send(producer, others))
    await processed(payments, await send(producer, unknown))

    for event in (others, unknown):
        payment = await payment_of(payments, event.order_id)
        assert payment is not None and payment.status == "Failed"
        assert await transactions_of(payments, event.order_id) == []
        assert domain.charge_key(event.order_id) not in payments.provider.asked_charges
        [failed] = await published(payments, infra, event.order_id)
        assert failed.type == "PaymentFailed"
        assert failed.data["reason"] == "unknown payment method"
        assert failed.data["user_id"] == str(buyer)


async def test_a_run_of_reservations_is_charged_declined_refused_or_skipped_each_as_alone(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    card = await payment_method(payments, producer, buyer)
    declining = await payment_method(payments, producer, buyer, token="tok_decline")
    strangers = await payment_method(payments, producer, uuid4())
    ok, declined, foreign, late = (
        reserved(buyer, method) for method in (card, declining, strangers, card)
    )
    await processed(payments, await send(producer, cancelled(late)))
    ok_sent = ok.envelope()

    runs = await apply_as_one_batch(
        payments.runtime,
        *own(payments),
        (ok, ok_sent),
        (declined, declined.envelope()),
        (foreign, foreign.envelope()),
        (late, late.envelope()),
        (ok, ok_sent),  # delivered twice in one batch
    )

    assert runs == 1
    statuses = [await payment_of(payments, e.order_id) for e in (ok, declined, foreign, late)]
    assert [p.status if p else None for p in statuses] == [
        domain.PAID,
        domain.FAILED,
        domain.FAILED,
        None,
    ]
    assert [len(await transactions_of(payments, e.order_id)) for e in (ok, declined, foreign)] == [
        1,
        1,
        0,  # refused without asking the provider
    ]
    assert payments.provider.asked_charges.count(domain.charge_key(ok.order_id)) == 1
    outcomes = [
        [(e.type, e.data.get("reason")) for e in await published(payments, infra, event.order_id)]
        for event in (ok, declined, late)
    ]
    assert outcomes == [
        [("PaymentSucceeded", None)],
        [("PaymentFailed", "card declined")],
        [],
    ]
    [(kind, _)] = [
        (e.type, e.data["reason"]) for e in await published(payments, infra, foreign.order_id)
    ]
    assert kind == "PaymentFailed"


async def test_a_run_of_cancellations_refunds_the_paid_and_remembers_every_one(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    buyer = uuid4()
    card = await payment_method(payments, producer, buyer)
    declining = await payment_method(payments, producer, buyer, token="tok_decline")
    paid_one, paid_two, declined, unseen = (
        reserved(buyer, method) for method in (card, card, declining, card)
    )
    for event in (paid_one, paid_two, declined):
        await processed(payments, await send(producer, event))

    cancellations = [
        cancelled(event, f"reason {n}") for n, event in enumerate((paid_one, paid_two, declined))
    ]
    runs = await apply_as_one_batch(
        payments.runtime,
        *own(payments),
        *((cancellation, cancellation.envelope()) for cancellation in cancellations),
        (cancelled(unseen), cancelled(unseen).envelope()),
    )
    # the reservation of an order cancelled before it came charges nothing
    await processed(payments, await send(producer, unseen))

    assert runs == 1
    statuses = [await payment_of(payments, e.order_id) for e in (paid_one, paid_two, declined)]
    assert [p.status if p else None for p in statuses] == [
        domain.REFUNDED,
        domain.REFUNDED,
        domain.FAILED,
    ]
    assert await payment_of(payments, unseen.order_id) is None
    refunds = [domain.refund_key(e.order_id) for e in (paid_one, paid_two, declined)]
    assert [payments.provider.asked_refunds.count(key) for key in refunds] == [1, 1, 0]
    kinds = [
        [t.kind for t in await transactions_of(payments, e.order_id)] for e in (paid_one, paid_two)
    ]
    assert kinds == [["Charge", "Refund"], ["Charge", "Refund"]]
    await assert_refunded_once(payments, infra, paid_one, "reason 0")
    await assert_refunded_once(payments, infra, paid_two, "reason 1")
    async with payments.runtime.sessionmaker() as session:
        remembered = await session.scalar(
            select(func.count())
            .select_from(CancelledOrder)
            .where(
                CancelledOrder.order_id.in_(
                    [e.order_id for e in (paid_one, paid_two, declined, unseen)]
                )
            )
        )
    assert remembered == 4


async def test_add_payment_method_stores_one_method_when_the_command_comes_twice(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    user_id = uuid4()
    command = AddPaymentMethod(
        payment_method_id=uuid4(), user_id=user_id, method="Credit Card", token="tok_secret_4242"
    )
    sent = await send(producer, command)
    await send(producer, command, envelope=sent)
    await processed(payments, await send(producer, command))

    async with payments.runtime.sessionmaker() as session:
        rows = (
            await session.scalars(select(PaymentMethod).where(PaymentMethod.user_id == user_id))
        ).all()
    assert [(row.id, row.token) for row in rows] == [(command.payment_method_id, command.token)]
    [added] = await published(payments, infra, user_id)
    assert added.type == "PaymentMethodAdded"
    assert added.data == {
        "payment_method_id": str(command.payment_method_id),
        "user_id": str(user_id),
        "method": "Credit Card",
    }


async def test_payment_method_routes_answer_without_tokens_when_a_user_has_methods(
    payments: PaymentService, producer: AIOKafkaProducer
) -> None:
    user_id = uuid4()
    first = await payment_method(payments, producer, user_id, token="tok_first_secret")
    second = await payment_method(payments, producer, user_id, token="tok_second_secret")

    page_one = await payments.http.get("/payment-methods", params={"user_id": user_id, "limit": 1})
    assert page_one.status_code == 200
    assert [item["id"] for item in page_one.json()["items"]] == [str(first)]
    cursor = page_one.json()["next_cursor"]
    page_two = await payments.http.get(
        "/payment-methods", params={"user_id": user_id, "limit": 1, "cursor": cursor}
    )
    assert [item["id"] for item in page_two.json()["items"]] == [str(second)]
    assert page_two.json()["next_cursor"] is None
    assert set(page_one.json()["items"][0]) == {"id", "method", "created_at"}
    assert "secret" not in page_one.text + page_two.text

    one = await payments.http.get(f"/payment-methods/{second}")
    assert one.status_code == 200
    assert one.json()["user_id"] == str(user_id)
    assert one.json()["method"] == "Credit Card"
    assert "secret" not in one.text
    assert (await payments.http.get(f"/payment-methods/{uuid4()}")).status_code == 404
    assert (
        await payments.http.get("/payment-methods", params={"user_id": "nope"})
    ).status_code == 422


class LostCommitError(RuntimeError):
    """The batch's transaction did not commit (PostgreSQL restarted, the connection dropped)."""


async def differences_of(payments: PaymentService, order_id: UUID) -> list[str]:
    """What reconciliation finds wrong with this order between the provider and payment_svc."""
    found = await reconcile(payments.runtime.settings.service_database_url(), payments.provider)
    return [line for line in found if str(order_id) in line]


async def refunded_at_provider(payments: PaymentService, reference: str) -> list[Decimal]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(payments.provider.ledger_url)
    ) as conn:
        cursor = await conn.execute(
            "SELECT amount FROM refunds WHERE charge_reference = %s", (reference,)
        )
        return [row[0] for row in await cursor.fetchall()]


async def assert_refunded_once(
    payments: PaymentService, infra: Infra, event: StockReserved, reason: str
) -> list[Envelope]:
    """The order's capture is refunded in full, once, and reconciled; payment_svc announced it
    with PaymentRefunded v2 giving ``reason``. Returns what it published for the order."""
    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Refunded"
    reference = simulated_reference(domain.charge_key(event.order_id))
    assert await refunded_at_provider(payments, reference) == [event.total_price]
    events = await published(payments, infra, event.order_id)
    assert [(e.type, e.version, e.data.get("reason")) for e in events] == [
        ("PaymentSucceeded", 1, None),
        ("PaymentRefunded", 2, reason),
    ]
    assert await differences_of(payments, event.order_id) == []
    return events


async def dead_lettered(infra: Infra, sent: Envelope) -> bool:
    """Whether payment_svc dead-lettered this message (not only another of its order's)."""
    records = await read_to_end(infra.kafka_access, dead_letter_topic("payment_svc"))
    return any(str(sent.id).encode() in (record.value or b"") for record in records)


async def dead_lettered_while(
    payments: PaymentService,
    infra: Infra,
    producer: AIOKafkaProducer,
    faults: Faults,
    message: StockReserved | OrderCancelled,
) -> Envelope:
    """Deliver ``message`` while the provider misbehaves so, until payment_svc dead-letters it
    after its tries (a charge attempt stays open; a cancellation is remembered); then the
    provider behaves again."""
    payments.provider.faults = faults
    try:
        sent = await send(producer, message)
        await eventually(lambda: dead_lettered(infra, sent))
    finally:
        payments.provider.faults = Faults()
    return sent


async def sweep(payments: PaymentService) -> int:
    """What the background sweep does, now, to charges of any age."""
    return await services.settle_stale_charges(
        payments.runtime.sessionmaker, payments.provider, older_than_s=0
    )


async def test_a_capture_whose_commit_failed_is_refunded_when_the_order_is_cancelled_next(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "31.00")
    envelope = event.envelope(correlation_id=uuid4())
    table, _ = own(payments)

    # The provider captures, then the batch's transaction is lost.
    with pytest.raises(LostCommitError):
        async with batch_transaction(payments.runtime.sessionmaker, savepoints=False):
            await table[StockReserved](envelope, event)
            raise LostCommitError
    assert await payment_of(payments, event.order_id) is None
    captured = await payments.provider.retrieve(domain.charge_key(event.order_id))
    assert captured is not None and captured.approved

    # The customer cancels before the reservation comes again.
    await processed(payments, await send(producer, cancelled(event)))

    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Refunded"
    assert [
        (t.kind, t.status, t.gateway_id) for t in await transactions_of(payments, event.order_id)
    ] == [
        ("Charge", "Paid", captured.reference),
        ("Refund", "Refunded", simulated_reference(domain.refund_key(event.order_id))),
    ]
    assert await refunded_at_provider(payments, captured.reference) == [Decimal("31.00")]
    # The reservation delivered again takes nothing more.
    await processed(payments, await send(producer, event, envelope=envelope))
    assert payments.provider.asked_charges.count(domain.charge_key(event.order_id)) == 1
    assert await refunded_at_provider(payments, captured.reference) == [Decimal("31.00")]
    events = await published(payments, infra, event.order_id)
    assert [e.type for e in events] == ["PaymentSucceeded", "PaymentRefunded"]
    assert await differences_of(payments, event.order_id) == []


async def test_a_capture_the_provider_failed_to_answer_is_settled_paid_after_its_dead_letter(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "12.50")
    await dead_lettered_while(payments, infra, producer, Faults(error_after_capture=1.0), event)
    assert await payment_of(payments, event.order_id) is None

    assert await sweep(payments) >= 1  # from the provider's ledger
    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Paid"
    [charge] = await transactions_of(payments, event.order_id)
    assert charge.gateway_id == simulated_reference(domain.charge_key(event.order_id))
    assert [e.type for e in await published(payments, infra, event.order_id)] == [
        "PaymentSucceeded"
    ]
    assert await differences_of(payments, event.order_id) == []


async def test_a_capture_the_provider_failed_to_answer_is_refunded_when_the_order_is_cancelled(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "8.20")
    await dead_lettered_while(payments, infra, producer, Faults(error_after_capture=1.0), event)

    await processed(payments, await send(producer, cancelled(event, "Cancelled by the customer")))

    await assert_refunded_once(payments, infra, event, "Cancelled by the customer")


async def test_a_charge_never_captured_is_voided_and_recorded_failed_by_the_sweep(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "5.00")
    await dead_lettered_while(payments, infra, producer, Faults(unavailable=1.0), event)

    assert await sweep(payments) >= 1
    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Failed"
    [failed] = await published(payments, infra, event.order_id)
    assert (failed.type, failed.data["reason"]) == ("PaymentFailed", "the charge was voided")
    # A charge under its key can never be captured from now on.
    again = await payments.provider.charge(
        idempotency_key=domain.charge_key(event.order_id),
        amount=Decimal("5.00"),
        token="tok_visa",
    )
    assert not again.approved
    assert await differences_of(payments, event.order_id) == []


async def test_a_cancellation_the_provider_could_not_refund_is_refunded_by_the_sweep(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "14.00")
    await processed(payments, await send(producer, event))
    cancellation = cancelled(event, "Cancelled by an admin")

    sent = await dead_lettered_while(
        payments, infra, producer, Faults(unavailable=1.0), cancellation
    )
    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Paid"
    assert [line.split(": ", 1)[1] for line in await differences_of(payments, event.order_id)] == [
        "cancelled, and its payment is still Paid"
    ]

    assert await sweep(payments) >= 1

    events = await assert_refunded_once(payments, infra, event, "Cancelled by an admin")
    assert (events[-1].correlation_id, events[-1].causation_id) == (sent.correlation_id, sent.id)


async def test_a_capture_left_by_a_failed_cancellation_is_refunded_by_the_sweep_with_its_reason(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "9.90")
    await dead_lettered_while(payments, infra, producer, Faults(error_after_capture=1.0), event)
    cancellation = cancelled(event, "Cancelled by the customer")
    await dead_lettered_while(payments, infra, producer, Faults(unavailable=1.0), cancellation)
    assert await payment_of(payments, event.order_id) is None

    assert await sweep(payments) >= 1  # voids the charge, records the capture, refunds it

    await assert_refunded_once(payments, infra, event, "Cancelled by the customer")


async def test_the_sweep_refunds_with_the_v1_reason_when_no_reason_was_remembered(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "3.30")
    await processed(payments, await send(producer, event))
    await dead_lettered_while(payments, infra, producer, Faults(unavailable=1.0), cancelled(event))
    async with payments.runtime.sessionmaker.begin() as session:
        remembered = await session.get(CancelledOrder, event.order_id)
        assert remembered is not None and remembered.reason == "Cancelled by customer"
        remembered.reason = None  # as a row written before reasons were

    assert await sweep(payments) >= 1

    await assert_refunded_once(payments, infra, event, REFUNDED_BEFORE_V2)


async def test_the_sweep_leaves_an_order_another_transaction_holds_for_its_next_round(
    payments: PaymentService, producer: AIOKafkaProducer, infra: Infra
) -> None:
    event = await reservation(payments, producer, "6.00")
    await dead_lettered_while(payments, infra, producer, Faults(error_after_capture=1.0), event)
    url = libpq_url(payments.runtime.settings.service_database_url())

    async with await psycopg.AsyncConnection.connect(url) as holder:
        await holder.execute(  # the order's lock, as a batch applying its messages holds it
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            (statements.ORDER_LOCKS, str(event.order_id)),
        )
        await sweep(payments)
        assert await payment_of(payments, event.order_id) is None
    await sweep(payments)

    payment = await payment_of(payments, event.order_id)
    assert payment is not None and payment.status == "Paid"
