"""inventory_svc on the real broker and database: the ledger that product_svc's StockChanged
events build, and its audit against the stock each movement reported."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from inventory_svc.app import create_app as create_inventory_app
from inventory_svc.models import InventoryMovement
from inventory_svc.settings import Settings as InventorySettings
from product_svc.app import create_app as create_product_app
from product_svc.models import Inbox as ProductInbox
from product_svc.models import Inventory
from product_svc.settings import Settings as ProductSettings
from schemas.envelope import Envelope, Message
from schemas.orders import OrderCancelled, OrderPlaced, PricedItem
from schemas.products import CreateProduct, ItemQuantity, RestockProduct, StockChanged
from tests.conftest import eventually
from tests.integration.conftest import InProcess, in_process, send


async def scalar(service: InProcess, query: Any) -> Any:
    async with service.runtime.sessionmaker() as session:
        return await session.scalar(query)


async def applied(service: InProcess, envelope: Envelope) -> bool:
    found = select(ProductInbox.message_id).where(ProductInbox.message_id == envelope.id)
    return await scalar(service, found) is not None


async def recorded(service: InProcess, product_id: UUID, count: int) -> bool:
    """The ledger holds ``count`` movements of the product."""
    query = select(func.count()).where(InventoryMovement.product_id == product_id)
    return bool(await scalar(service, query) == count)


async def test_audit_finds_no_mismatch_when_restock_reserve_and_release_come_from_product_svc(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer
) -> None:
    async with (
        in_process(create_product_app(settings_for(ProductSettings))) as product_svc,
        in_process(create_inventory_app(settings_for(InventorySettings))) as inventory_svc,
    ):
        http = inventory_svc.http
        product_id = uuid4()
        placed = OrderPlaced(
            order_id=uuid4(),
            user_id=uuid4(),
            items=(PricedItem(product_id=product_id, quantity=4, unit_price=Decimal("2.50")),),
            total_price=Decimal("10.00"),
            payment_method_id=uuid4(),
        )
        cancelled = OrderCancelled(
            order_id=placed.order_id,
            user_id=placed.user_id,
            reason="payment failed: declined",
            items=(ItemQuantity(product_id=product_id, quantity=4),),
        )
        steps: list[Message] = [
            CreateProduct(product_id=product_id, name="Lamp", price=Decimal(25), initial_stock=10),
            RestockProduct(product_id=product_id, change=5),
            placed,
            cancelled,
            RestockProduct(product_id=product_id, change=-3, reason="Damaged"),
        ]
        for step in steps:  # one after the other: they travel on different topics
            sent = await send(producer, step)
            await eventually(lambda sent=sent: applied(product_svc, sent))

        await eventually(lambda: recorded(inventory_svc, product_id, 5))
        stock = await scalar(
            product_svc, select(Inventory.stock).where(Inventory.product_id == product_id)
        )
        assert stock == 12
        ledger = (await http.get(f"/products/{product_id}/movements")).json()["items"]
        assert [(m["change"], m["reason"]) for m in ledger] == [
            (10, "Restock"),
            (5, "Restock"),
            (-4, "Order Placed"),
            (4, "Order Cancelled"),
            (-3, "Damaged"),
        ]
        balance = (await http.get(f"/products/{product_id}/stock")).json()
        assert balance == {"product_id": str(product_id), "ledger_sum": 12, "last_stock": 12}
        audit = (await http.get("/audit")).json()
        assert audit["products"] >= 1
        assert str(product_id) not in {m["product_id"] for m in audit["mismatches"]}


async def test_audit_reports_mismatch_when_a_movement_is_missing(
    settings_for: Callable[..., Any], producer: AIOKafkaProducer
) -> None:
    async with in_process(create_inventory_app(settings_for(InventorySettings))) as inventory_svc:
        http = inventory_svc.http
        product_id, order_id = uuid4(), uuid4()
        history = [
            StockChanged(product_id=product_id, change=10, stock=10, reason="Restock"),
            StockChanged(
                product_id=product_id, change=-3, stock=7, reason="Order Placed", order_id=order_id
            ),
            # the movement to 5 (-2) never reached the ledger
            StockChanged(product_id=product_id, change=1, stock=6, reason="Restock"),
        ]
        for change in history:  # one key: one partition, recorded in this order
            await send(producer, change)

        await eventually(lambda: recorded(inventory_svc, product_id, 3))
        audit = (await http.get("/audit")).json()
        assert {"product_id": str(product_id), "ledger_sum": 8, "stock": 6} in audit["mismatches"]
        assert audit["products"] >= 1
        balance = (await http.get(f"/products/{product_id}/stock")).json()
        assert balance == {"product_id": str(product_id), "ledger_sum": 8, "last_stock": 6}
        unknown = uuid4()
        nothing = (await http.get(f"/products/{unknown}/stock")).json()
        assert nothing == {"product_id": str(unknown), "ledger_sum": 0, "last_stock": None}


async def test_ledger_and_audit_follow_recording_order_when_timestamps_tie(
    settings_for: Callable[..., Any],
) -> None:
    async with in_process(create_inventory_app(settings_for(InventorySettings))) as inventory_svc:
        http = inventory_svc.http
        product_id = uuid4()
        later_id, earlier_id = sorted((uuid4(), uuid4()))
        async with inventory_svc.runtime.sessionmaker.begin() as session:
            # one transaction: one created_at for both, and the first recorded has the larger id
            first = InventoryMovement(
                id=earlier_id, product_id=product_id, change=4, reason="Restock", stock_after=4
            )
            session.add(first)
            await session.flush()
            second = InventoryMovement(
                id=later_id, product_id=product_id, change=-1, reason="Order Placed", stock_after=3
            )
            session.add(second)

        movements = f"/products/{product_id}/movements"
        ledger = (await http.get(movements)).json()
        assert [m["id"] for m in ledger["items"]] == [str(earlier_id), str(later_id)]
        first_page = (await http.get(movements, params={"limit": 1})).json()
        second_page = (
            await http.get(movements, params={"limit": 1, "cursor": first_page["next_cursor"]})
        ).json()
        assert [m["id"] for m in first_page["items"] + second_page["items"]] == [
            str(earlier_id),
            str(later_id),
        ]
        assert second_page["next_cursor"] is None
        balance = (await http.get(f"/products/{product_id}/stock")).json()
        assert balance == {"product_id": str(product_id), "ledger_sum": 3, "last_stock": 3}
        audit = (await http.get("/audit")).json()
        assert str(product_id) not in {m["product_id"] for m in audit["mismatches"]}
