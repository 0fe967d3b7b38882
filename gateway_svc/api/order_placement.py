"""Placing an order (``POST /orders``): every item priceable, the payment method and the
address the customer's, then a PlaceOrder command. With an Idempotency-Key a retry is the same
order; the answer waits until order_svc has recorded it, so that its Location answers at once."""

import asyncio
import time
from typing import Annotated
from uuid import UUID, uuid4, uuid5

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway_svc.api.deps import (
    Accepted,
    Commands,
    Config,
    Known,
    Placements,
    Upstream,
    Watch,
    field_error,
)
from gateway_svc.api.order_reads import visible_order
from gateway_svc.auth import CurrentUser, Principal
from gateway_svc.facts import Facts
from gateway_svc.middleware import client_address, release_slot
from gateway_svc.watch import News
from schemas.orders import (
    CANCELLED,
    PAID,
    PENDING,
    SHIPPED,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    PlaceOrder,
)
from schemas.products import ItemQuantity

router = APIRouter(tags=["orders"])

ORDER_IDS = UUID("6f1c7c1e-4f7e-4d0a-9a53-0e4a3f1b2c5d")
"""Namespace of order ids: uuid5(ORDER_IDS, "<user id>:<Idempotency-Key>")."""
STATUS_AFTER = {
    OrderPlaced.TYPE: PENDING,
    OrderRejected.TYPE: CANCELLED,
    OrderPaid.TYPE: PAID,
    OrderCancelled.TYPE: CANCELLED,
    OrderShipped.TYPE: SHIPPED,
}
"""The status an order has right after each of its events."""
RETRY_LOOKUP_AFTER_S = 0.5
"""A keyed placement that has no news by then reads its order: a retry's order may have
nothing more to say."""


class OrderItemIn(BaseModel):
    product_id: UUID
    quantity: int = Field(ge=1, le=1000)


class OrderCreate(BaseModel):
    items: list[OrderItemIn] = Field(min_length=1, max_length=50)
    payment_method_id: UUID
    address_id: UUID | None = None


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="the same key (per user) gives the same order",
    ),
]


def order_id_for(user_id: UUID, idempotency_key: str | None) -> UUID:
    return uuid5(ORDER_IDS, f"{user_id}:{idempotency_key}") if idempotency_key else uuid4()


CATALOG_WAIT_S = 3.0
"""How long an order waits for order_svc to learn of a product the catalog already has."""


async def _orderable(upstream: Upstream, facts: Facts, product_ids: list[UUID]) -> None:
    """Every item must be a product order_svc can price. order_svc learns new products from
    events, so a product created a moment ago may not have reached it yet: wait briefly for it,
    and tell a product that does not exist at all (422) from one still on its way (503)."""
    pending = {
        product_id: index
        for index, product_id in reversed(list(enumerate(product_ids)))
        if not facts.known(("priced", product_id))
    }
    deadline = time.monotonic() + CATALOG_WAIT_S
    while pending:
        for product_id in list(pending):
            if await upstream.find("order", f"/products/{product_id}/price") is not None:
                facts.learn(("priced", product_id))
                del pending[product_id]
        if not pending:
            return
        for product_id, index in pending.items():
            if await upstream.find("product", f"/products/{product_id}") is None:
                raise field_error(("body", "items", index, "product_id"), "no such product")
        if time.monotonic() > deadline:
            raise HTTPException(
                503, "the catalog is still being updated; retry shortly", {"Retry-After": "1"}
            )
        await asyncio.sleep(0.1)


async def _method_of(upstream: Upstream, user: Principal, method_id: UUID) -> bool:
    method = await upstream.find("payment", f"/payment-methods/{method_id}")
    return method is not None and method["user_id"] == str(user.id)


async def _address_of(upstream: Upstream, user: Principal, address_id: UUID) -> bool:
    return await upstream.find("user", f"/users/{user.id}/addresses/{address_id}") is not None


@router.post(
    "/orders",
    status_code=202,
    response_model=Accepted,
    responses={202: {"headers": {"Location": {"description": "where to follow it"}}}},
)
async def place_order(
    body: OrderCreate,
    user: CurrentUser,
    upstream: Upstream,
    facts: Known,
    commands: Commands,
    watch: Watch,
    placements: Placements,
    settings: Config,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Place an order; follow it at the Location (``?wait=10`` waits for the outcome,
    ``/events`` streams its steps). Answers once order_svc has recorded it (Pending, or
    Cancelled with its reason when it cannot be priced), so that the Location answers at once;
    past WRITE_WAIT_S, or when too many placements wait already, it answers 202 Pending all the
    same.

    With an ``Idempotency-Key``, a retry answers with the same order id and the order's status:
    its command is sent again and order_svc, which places an order id once, ignores it. A retry
    the checks would now refuse looks the order up, and answers it if it exists."""
    order_id = order_id_for(user.id, idempotency_key)
    location = {"Location": f"/orders/{order_id}"}
    try:
        await _placeable(body, user, upstream, facts)
    except HTTPException:
        existing = (
            await visible_order(upstream, order_id, user, details=False)
            if idempotency_key
            else None
        )
        if existing is None:
            raise
        return JSONResponse(
            {"id": str(order_id), "status": existing["status"]}, 202, headers=location
        )
    command = PlaceOrder(
        order_id=order_id,
        user_id=user.id,
        items=tuple(ItemQuantity(**item.model_dump()) for item in body.items),
        payment_method_id=body.payment_method_id,
        address_id=body.address_id,
    )
    with watch.changes(order_id) as news:
        await commands.send(command)
        # no news while the watch reconnects; no wait past the placements' bound
        place = (
            placements.try_take(str(user.id), client_address(request.scope))
            if watch.ready
            else None
        )
        if place is None:
            status = PENDING
        else:
            with place:
                release_slot(request.scope)  # waiting for order_svc is not the gateway's work
                status = await _recorded(
                    news,
                    upstream,
                    user,
                    order_id,
                    settings.write_wait_s,
                    keyed=bool(idempotency_key),
                )
    return JSONResponse({"id": str(order_id), "status": status}, 202, headers=location)


async def _recorded(
    news: News, upstream: Upstream, user: Principal, order_id: UUID, wait_s: float, *, keyed: bool
) -> str:
    """The order's status once order_svc has recorded it, or Pending past ``wait_s``."""
    first = min(wait_s, RETRY_LOOKUP_AFTER_S) if keyed else wait_s
    if await news.wait(first):
        return STATUS_AFTER.get(news.last or "", PENDING)
    if keyed:  # perhaps a retry, whose order has nothing more to say
        existing = await visible_order(upstream, order_id, user, details=False)
        if existing is not None:
            return str(existing["status"])
        if await news.wait(wait_s - first):
            return STATUS_AFTER.get(news.last or "", PENDING)
    return PENDING


async def _placeable(body: OrderCreate, user: Principal, upstream: Upstream, facts: Facts) -> None:
    """Every item priceable, the payment method and the address the customer's; else 4xx (or
    503 while the catalog catches up) naming the field."""
    await _orderable(upstream, facts, [item.product_id for item in body.items])
    method_id = body.payment_method_id
    if not await facts.confirm(
        ("payment method", method_id, user.id),
        lambda: _method_of(upstream, user, method_id),
    ):
        raise field_error(
            ("body", "payment_method_id"),
            "no such payment method of yours (one saved with a 202 is usable once"
            " GET /me/payment-methods lists it)",
        )
    address_id = body.address_id
    if address_id is not None and not await facts.confirm(
        ("address", address_id, user.id),
        lambda: _address_of(upstream, user, address_id),
    ):
        raise field_error(
            ("body", "address_id"),
            "no such address of yours (one saved with a 202 is usable once GET /me/addresses"
            " lists it)",
        )
