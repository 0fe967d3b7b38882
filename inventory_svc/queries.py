"""inventory_svc's reads for its HTTP API; no writes."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from common.unit_of_work import SessionMaker
from inventory_svc.models import InventoryMovement


async def list_movements(
    sessionmaker: SessionMaker,
    product_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[InventoryMovement]:
    """A product's movements in ledger order, those after the movement ``after`` names.

    The ledger's order is the order of recording (``seq``), not ``created_at``: the movements
    of one batch share their transaction's timestamp. The cursor is the usual ``(created_at,
    id)`` of the last movement seen; its id finds where the next page starts."""
    movement = InventoryMovement
    query = select(movement).where(movement.product_id == product_id)
    if after is not None:
        last_seen = select(movement.seq).where(movement.id == after[1]).scalar_subquery()
        query = query.where(movement.seq > last_seen)  # no such movement: an empty page
    async with sessionmaker() as session:
        return list(await session.scalars(query.order_by(movement.seq).limit(limit)))


@dataclass(frozen=True)
class LedgerBalance:
    """A product's ledger: the sum of its changes and the stock its latest movement reported."""

    product_id: UUID
    ledger_sum: int
    last_stock: int | None


@dataclass(frozen=True)
class Audit:
    products: int
    mismatches: list[LedgerBalance]


def _balances() -> Select[UUID, int, int | None]:
    """Per product: the sum of the changes and the stock after the last recorded movement."""
    movement = InventoryMovement
    return select(
        movement.product_id,
        func.sum(movement.change).label("ledger_sum"),
        func.array_agg(aggregate_order_by(movement.stock_after, movement.seq.desc()))[1].label(
            "last_stock"
        ),
    ).group_by(movement.product_id)


async def audit(sessionmaker: SessionMaker) -> Audit:
    """Every product whose ledger does not add up to the stock its latest movement reported."""
    balances = _balances().subquery()
    mismatched = (
        select(balances)
        .where(balances.c.ledger_sum.is_distinct_from(balances.c.last_stock))
        .order_by(balances.c.product_id)
    )
    async with sessionmaker() as session:
        products = await session.scalar(select(func.count(distinct(InventoryMovement.product_id))))
        rows = (await session.execute(mismatched)).all()
    return Audit(
        products=products or 0,
        mismatches=[
            LedgerBalance(product_id, int(total), last) for product_id, total, last in rows
        ],
    )


async def balance(sessionmaker: SessionMaker, product_id: UUID) -> LedgerBalance:
    """One product's ledger; a product with no movement has a sum of 0 and no last stock."""
    async with sessionmaker() as session:
        row = (
            await session.execute(_balances().where(InventoryMovement.product_id == product_id))
        ).first()
    if row is None:
        return LedgerBalance(product_id, 0, None)
    return LedgerBalance(product_id, int(row.ledger_sum), row.last_stock)
