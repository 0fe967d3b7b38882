"""product_svc's compiled statements: the stock locks, reads and bulk writes of its reservations
and releases, each built once as a module constant (a statement is compiled once, and deferred
rows are grouped by the statement's identity)."""

from sqlalchemy import Uuid, false, func, select, true, union, update
from sqlalchemy.dialects.postgresql import insert

from common.statements import Direct, InsertRows, UpdateRows, any_of, array_rows, table_of
from product_svc.models import CancelledOrder, Inventory, Reservation

_RESERVATIONS = table_of(Reservation)
_CANCELLED = table_of(CancelledOrder)
_INVENTORY = table_of(Inventory)

LOCK_STOCK = Direct(
    select(_INVENTORY.c.product_id, _INVENTORY.c.stock)
    .where(any_of(_INVENTORY.c.product_id, "products"))
    .order_by(_INVENTORY.c.product_id)
    .with_for_update()
)
SET_STOCKS = UpdateRows(_INVENTORY, match="product_id")
RESERVED_OR_CANCELLED = Direct(
    union(
        select(_RESERVATIONS.c.order_id, false().label("cancelled")).where(
            any_of(_RESERVATIONS.c.order_id, "orders")
        ),
        select(_CANCELLED.c.order_id, true().label("cancelled")).where(
            any_of(_CANCELLED.c.order_id, "orders")
        ),
    )
)
"""Of the orders, those holding a reservation (``cancelled`` false) and those cancelled."""
ADD_RESERVATIONS = InsertRows(_RESERVATIONS)
REMEMBER_CANCELLED = Direct(
    insert(_CANCELLED)
    .from_select(["order_id"], select(array_rows({"order_id": Uuid}).c.order_id))
    .on_conflict_do_nothing()
)
LOCK_HELD = Direct(
    select(
        _RESERVATIONS.c.id,
        _RESERVATIONS.c.order_id,
        _RESERVATIONS.c.product_id,
        _RESERVATIONS.c.quantity,
    )
    .where(any_of(_RESERVATIONS.c.order_id, "orders"), _RESERVATIONS.c.released.is_(False))
    .order_by(_RESERVATIONS.c.product_id)
    .with_for_update()
)
"""The reservations the orders still hold, locked."""
RELEASE = Direct(
    update(_RESERVATIONS)
    .where(any_of(_RESERVATIONS.c.id, "reservations"))
    .values(released=True, released_at=func.now())
)
