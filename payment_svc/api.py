"""payment_svc's HTTP API, called by the gateway (never by clients directly). Card tokens never
leave the service."""

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from common.http import Reads
from common.pagination import Cursor, Limit, decode_cursor, page
from payment_svc import queries
from schemas.envelope import Money

router = APIRouter(tags=["payments"])


class PaymentMethodSummary(BaseModel):
    id: UUID
    method: str
    created_at: datetime


class PaymentMethodPage(BaseModel):
    items: list[PaymentMethodSummary]
    next_cursor: str | None


class PaymentMethodPublic(BaseModel):
    id: UUID
    user_id: UUID
    method: str
    created_at: datetime


class TransactionPublic(BaseModel):
    kind: str
    gateway_id: str
    amount: Money
    status: str
    created_at: datetime


class PaymentPublic(BaseModel):
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    status: str
    amount: Money
    created_at: datetime
    transactions: list[TransactionPublic]


@router.get("/payment-methods", responses={422: {"description": "bad user id or cursor"}})
async def list_payment_methods(
    user_id: UUID, sessions: Reads, limit: Limit = 50, cursor: Cursor = None
) -> PaymentMethodPage:
    """One user's payment methods, oldest first (without their tokens)."""
    rows = await queries.list_payment_methods(
        sessions, user_id, after=decode_cursor(cursor), limit=limit + 1
    )
    items, next_cursor = page(rows, limit)
    return PaymentMethodPage(
        items=[
            PaymentMethodSummary(id=row.id, method=row.method, created_at=row.created_at)
            for row in items
        ],
        next_cursor=next_cursor,
    )


@router.get("/payment-methods/{method_id}", responses={404: {"description": "no such method"}})
async def read_payment_method(method_id: UUID, sessions: Reads) -> PaymentMethodPublic:
    """One payment method and its owner (the gateway checks that the caller owns it)."""
    method = await queries.get_payment_method(sessions, method_id)
    if method is None:
        raise HTTPException(404, "payment method not found")
    return PaymentMethodPublic(
        id=method.id, user_id=method.user_id, method=method.method, created_at=method.created_at
    )


@router.get("/orders/{order_id}/payment", responses={404: {"description": "no payment yet"}})
async def read_order_payment(order_id: UUID, sessions: Reads) -> PaymentPublic:
    """An order's payment (status ``Paid``, ``Failed`` or ``Refunded``) with its charge and
    refund transactions; 404 while the order has none."""
    found = await queries.get_order_payment(sessions, order_id)
    if found is None:
        raise HTTPException(404, "no payment for this order")
    payment, transactions = found
    return PaymentPublic(
        payment_id=payment.id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        status=payment.status,
        amount=payment.amount,
        created_at=payment.created_at,
        transactions=[
            TransactionPublic(
                kind=row.kind,
                gateway_id=row.gateway_id,
                amount=row.amount,
                status=row.status,
                created_at=row.created_at,
            )
            for row in transactions
        ],
    )
