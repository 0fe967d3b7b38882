"""order_svc's compiled statements: the reads, locks and bulk writes of its set-based use cases,
each built once as a module constant (a statement is compiled once, and deferred rows are
grouped by the statement's identity)."""

from typing import Any
from uuid import UUID

from sqlalchemy import ScalarSelect, Text, Update, Uuid, bindparam, func, select, update
from sqlalchemy.dialects import postgresql

from common.statements import Direct, InsertRows, any_of, array_rows, table_of
from order_svc.models import Order, OrderItem, OrderStatus, OrderStatusHistory, ProductPrice

_ORDERS = table_of(Order)
_PRICES = table_of(ProductPrice)


def _status_id(name: Any) -> ScalarSelect[UUID]:
    """The id of the status ``name`` (a value or a bind parameter)."""
    return select(OrderStatus.id).where(OrderStatus.name == name).scalar_subquery()


PRICES = Direct(
    select(_PRICES.c.product_id, _PRICES.c.price).where(any_of(_PRICES.c.product_id, "products"))
)
CREATE_ORDER = Direct(
    postgresql.insert(_ORDERS)
    .values(status_id=_status_id(bindparam("status")))
    .on_conflict_do_nothing(index_elements=[_ORDERS.c.id])
    .returning(_ORDERS.c.id)
)
"""Insert orders that do not exist yet (rows with ``status`` named); returns the ids inserted."""
ADD_ITEMS = InsertRows(table_of(OrderItem))
LOCK_ORDERS = Direct(
    select(
        Order.id,
        Order.user_id,
        Order.total_price,
        OrderStatus.name,
        OrderItem.product_id,
        OrderItem.quantity,
    )
    .join(OrderStatus, OrderStatus.id == Order.status_id)
    .outerjoin(OrderItem, OrderItem.order_id == Order.id)
    .where(any_of(_ORDERS.c.id, "orders"))
    .order_by(Order.id, OrderItem.product_id)
    .with_for_update(of=Order)
)
"""The orders, locked in id order, with their items: a row per item, or one for an order
without any."""


def _build_set_statuses() -> Update:
    moves = array_rows({"order_id": Uuid, "status": Text, "reason": Text}, name="new")
    return (
        update(_ORDERS)
        .where(_ORDERS.c.id == moves.c.order_id)
        .values(status_id=_status_id(moves.c.status), reason=moves.c.reason)
    )


SET_STATUSES = Direct(_build_set_statuses())
"""Bound with lists of ``order_id``, ``status`` and ``reason``: one statement for a run."""
HISTORY = InsertRows(table_of(OrderStatusHistory), sql_values={"at": func.clock_timestamp()})
"""clock_timestamp, not now(): taken after the order's row lock, so history sorts in lock order
(the rows are written when the unit of work ends, still under the lock, in the order added)."""
