"""What must hold once faults have cleared, read straight from every service's own database."""

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from aiokafka.errors import KafkaError

from common.kafka_access import KafkaAccess
from common.lag import consumer_lag
from payment_svc.adapters import SimulatedProvider
from payment_svc.reconcile import reconcile
from payment_svc.settings import LEDGER_DATABASE

SERVICE_DATABASES = (
    "user_svc",
    "product_svc",
    "order_svc",
    "payment_svc",
    "notification_svc",
    "inventory_svc",
)
FINAL = ("Paid", "Cancelled", "Shipped")
HANDLED_AFTER = {
    "gateway_svc": ("order_svc", "SELECT id FROM orders WHERE created_at > to_timestamp(%s)"),
    "product_svc": (
        "product_svc",
        "SELECT order_id FROM reservations WHERE created_at > to_timestamp(%s)",
    ),
    "payment_svc": (
        "payment_svc",
        "SELECT order_id FROM payments WHERE created_at > to_timestamp(%s)",
    ),
}
"""Where each service on an order's path leaves a trace of the orders it handled after a moment;
any other service: order_svc's final statuses written after it."""
ANY_HANDLED_AFTER = (
    "order_svc",
    "SELECT order_id FROM order_status_history WHERE at > to_timestamp(%s) "
    "AND status IN ('Paid', 'Cancelled', 'Shipped')",  # FINAL
)


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    paid_twice: list[str] = field(default_factory=list)
    refunded_twice: list[str] = field(default_factory=list)
    negative_stock: list[str] = field(default_factory=list)
    ledger_mismatches: list[str] = field(default_factory=list)
    money_mismatch: str = ""
    notification_mismatches: list[str] = field(default_factory=list)
    undrained_outboxes: dict[str, int] = field(default_factory=dict)
    money_differences: list[str] = field(default_factory=list)
    """Where the payment provider's ledger and payment_svc disagree (reconciliation)."""
    held_for_cancelled: list[str] = field(default_factory=list)
    """Stock still reserved for an order that is cancelled."""

    @property
    def duplicated_effects(self) -> int:
        return (
            len(self.paid_twice)
            + len(self.refunded_twice)
            + len(self.ledger_mismatches)
            + len(self.notification_mismatches)
            + (1 if self.money_mismatch else 0)
        )

    def problems(self) -> list[str]:
        found = []
        for name in (
            "lost",
            "paid_twice",
            "refunded_twice",
            "negative_stock",
            "ledger_mismatches",
            "notification_mismatches",
            "money_differences",
            "held_for_cancelled",
        ):
            values = getattr(self, name)
            if values:
                found.append(f"{name}: {len(values)} e.g. {values[:3]}")
        if self.money_mismatch:
            found.append(f"money: {self.money_mismatch}")
        if self.undrained_outboxes:
            found.append(f"outboxes not drained: {self.undrained_outboxes}")
        return found


class Databases:
    """The shop's state as its databases (and its consumer groups' progress) tell it."""

    def __init__(self, pg_port: str, kafka: KafkaAccess) -> None:
        self._port = pg_port
        self._kafka = kafka

    def rows(self, database: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(database), connect_timeout=5) as conn:
            return list(conn.execute(sql, tuple(params)).fetchall())

    def value(self, database: str, sql: str, params: Iterable[Any] = ()) -> Any:
        return self.rows(database, sql, params)[0][0]

    def duplicates_absorbed(self) -> int:
        return sum(
            int(self.value(db, "SELECT coalesce(sum(duplicates), 0) FROM inbox"))
            for db in SERVICE_DATABASES
        )

    def unfinished(self, order_ids: Iterable[str]) -> list[str]:
        ids = list(order_ids)
        done = {
            str(row[0])
            for row in self.rows(
                "order_svc",
                "SELECT o.id FROM orders o JOIN order_status s ON s.id = o.status_id "
                "WHERE o.id = ANY(%s::uuid[]) AND s.name = ANY(%s)",
                (ids, list(FINAL)),
            )
        }
        return [order_id for order_id in ids if order_id not in done]

    def finished_at(self, order_ids: Iterable[str]) -> dict[str, float]:
        """When each of the orders first reached a final status (wall clock), if it has."""
        return {
            str(order_id): float(at)
            for order_id, at in self.rows(
                "order_svc",
                "SELECT order_id, extract(epoch FROM min(at)) FROM order_status_history "
                "WHERE order_id = ANY(%s::uuid[]) AND status = ANY(%s) GROUP BY 1",
                (list(order_ids), list(FINAL)),
            )
        }

    def first_completed_after(self, service: str | None, moment: float) -> float | None:
        """Seconds from ``moment`` (wall clock) until the first order that ``service`` handled
        after it reached a final status, if one has."""
        database, sql = HANDLED_AFTER.get(service or "", ANY_HANDLED_AFTER)
        handled = [str(row[0]) for row in self.rows(database, sql, (moment,))]
        finished = [at for at in self.finished_at(handled).values() if at > moment]
        return min(finished) - moment if finished else None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self._port}/{database}"

    def open_charge_attempts(self) -> int:
        """Charges payment_svc began and has not recorded an outcome for yet."""
        return int(self.value("payment_svc", "SELECT count(*) FROM charge_attempts"))

    def reconciliation(self) -> list[str]:
        """Where the simulated provider's ledger and payment_svc disagree, order by order."""
        return asyncio.run(self._reconcile())

    async def _reconcile(self) -> list[str]:
        provider = SimulatedProvider(self.url(LEDGER_DATABASE))
        await provider.open()
        try:
            return await reconcile(self.url("payment_svc"), provider)
        finally:
            await provider.close()

    def held_for_cancelled(self) -> list[str]:
        cancelled = [
            str(row[0])
            for row in self.rows(
                "order_svc",
                "SELECT o.id FROM orders o JOIN order_status s ON s.id = o.status_id "
                "WHERE s.name = 'Cancelled'",
            )
        ]
        return [
            f"order {order_id}: {quantity} held"
            for order_id, quantity in self.rows(
                "product_svc",
                "SELECT order_id, sum(quantity) FROM reservations "
                "WHERE NOT released AND order_id = ANY(%s::uuid[]) GROUP BY 1",
                (cancelled,),
            )
        ]

    def outbox_backlog(self) -> dict[str, int]:
        counts = {
            db: int(self.value(db, "SELECT count(*) FROM outbox")) for db in SERVICE_DATABASES
        }
        return {db: n for db, n in counts.items() if n}

    def consumer_lag(self) -> dict[str, int]:
        lag = asyncio.run(consumer_lag(self._kafka))
        return {group: n for group, n in lag.items() if n}

    def wait_until_settled(self, order_ids: Iterable[str], timeout_s: float = 180) -> float:
        """Seconds until every accepted order is final, every outbox empty, every consumer
        group caught up and every charge begun settled."""
        ids = list(order_ids)
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                if (
                    not self.unfinished(ids)
                    and not self.outbox_backlog()
                    and not self.consumer_lag()
                    and not self.open_charge_attempts()
                ):
                    return time.monotonic() - started
            except (psycopg.OperationalError, KafkaError, OSError):
                pass
            time.sleep(0.5)
        return time.monotonic() - started

    def check(self, order_ids: Iterable[str]) -> Findings:
        ids = list(order_ids)
        found = Findings(lost=self.unfinished(ids))
        found.paid_twice = self._twice("Charge")
        found.refunded_twice = self._twice("Refund")
        stock = {
            str(p): s
            for p, s in self.rows("product_svc", "SELECT product_id, stock FROM inventory")
        }
        found.negative_stock = [p for p, s in stock.items() if s < 0]
        ledger = {
            str(p): int(total)
            for p, total in self.rows(
                "inventory_svc",
                "SELECT product_id, sum(change) FROM inventory_movements GROUP BY 1",
            )
        }
        found.ledger_mismatches = [
            f"{p}: stock {s}, ledger {ledger.get(p, 0)}"
            for p, s in stock.items()
            if s != ledger.get(p, 0)
        ]
        paid_orders = Decimal(
            self.value(
                "order_svc",
                "SELECT coalesce(sum(o.total_price), 0) FROM orders o "
                "JOIN order_status s ON s.id = o.status_id WHERE s.name IN ('Paid', 'Shipped')",
            )
        )
        charged = Decimal(
            self.value(
                "payment_svc", "SELECT coalesce(sum(amount), 0) FROM payments WHERE status = 'Paid'"
            )
        )
        if paid_orders != charged:
            found.money_mismatch = f"paid orders total {paid_orders}, payments kept {charged}"
        found.notification_mismatches = self._notification_mismatches()
        found.undrained_outboxes = self.outbox_backlog()
        found.money_differences = self.reconciliation()
        found.held_for_cancelled = self.held_for_cancelled()
        return found

    def _twice(self, kind: str) -> list[str]:
        return [
            str(row[0])
            for row in self.rows(
                "payment_svc",
                "SELECT p.order_id FROM transactions t JOIN payments p ON p.id = t.payment_id "
                "WHERE t.kind = %s GROUP BY p.order_id HAVING count(*) > 1",
                (kind,),
            )
        ]

    def _notification_mismatches(self) -> list[str]:
        sent = dict(
            self.rows("notification_svc", "SELECT type, count(*) FROM notifications GROUP BY 1")
        )
        statuses = dict(
            self.rows(
                "order_svc",
                "SELECT s.name, count(*) FROM orders o "
                "JOIN order_status s ON s.id = o.status_id GROUP BY 1",
            )
        )
        payments = dict(
            self.rows("payment_svc", "SELECT status, count(*) FROM payments GROUP BY 1")
        )
        expected = {
            "OrderPlaced": sum(statuses.values()),
            "OrderCancelled": statuses.get("Cancelled", 0),
            "PaymentSucceeded": payments.get("Paid", 0) + payments.get("Refunded", 0),
            "PaymentFailed": payments.get("Failed", 0),
        }
        return [
            f"{kind}: {sent.get(kind, 0)} notifications for {count} events"
            for kind, count in expected.items()
            if sent.get(kind, 0) != count
        ]
