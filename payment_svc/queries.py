"""payment_svc's reads for its HTTP API; no writes."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select

from common.pagination import page_after
from common.unit_of_work import SessionMaker
from payment_svc.models import Payment, PaymentMethod, Transaction


async def list_payment_methods(
    sessionmaker: SessionMaker, user_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> Sequence[PaymentMethod]:
    """A user's payment methods, oldest first, those after ``after``."""
    query = select(PaymentMethod).where(PaymentMethod.user_id == user_id)
    query = page_after(query, PaymentMethod.created_at, PaymentMethod.id, after=after, limit=limit)
    async with sessionmaker() as session:
        return (await session.scalars(query)).all()


async def get_payment_method(sessionmaker: SessionMaker, method_id: UUID) -> PaymentMethod | None:
    async with sessionmaker() as session:
        return await session.get(PaymentMethod, method_id)


async def get_order_payment(
    sessionmaker: SessionMaker, order_id: UUID
) -> tuple[Payment, Sequence[Transaction]] | None:
    """An order's payment and its transactions in the order they happened."""
    async with sessionmaker() as session:
        payment = await session.scalar(select(Payment).where(Payment.order_id == order_id))
        if payment is None:
            return None
        transactions = await session.scalars(
            select(Transaction)
            .where(Transaction.payment_id == payment.id)
            .order_by(Transaction.created_at, Transaction.kind)
        )
        return payment, transactions.all()
