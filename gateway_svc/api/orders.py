"""Orders: place (idempotent with Idempotency-Key), list, follow (long poll or a stream of
its saga's steps), cancel, ship."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID, uuid4, uuid5

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from common.pagination import Cursor, Limit
from gateway_svc.api.accounts import Page
from gateway_svc.api.deps import (
    Accepted,
    Commands,
    Config,
    Known,
    Placements,
    Upstream,
    Waiting,
    Watch,
    field_error,
)
from gateway_svc.auth import ADMIN_RESPONSES, Admin, CurrentUser, Principal
from gateway_svc.facts import Facts
from gateway_svc.middleware import client_address, release_slot
from gateway_svc.watch import News, news_or_leaving
from schemas.orders import (
    CANCELLED,
    PAID,
    PENDING,
    SHIPPED,
    CancelOrder,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
    PlaceOrder,
    ShipOrder,
)
from schemas.products import ItemQuantity

router = APIRouter(tags=["orders"])

ORDER_IDS = UUID("6f1c7c1e-4f7e-4d0a-9a53-0e4a3f1b2c5d")
"""Namespace of order ids: uuid5(ORDER_IDS, "<user id>:<Idempotency-Key>")."""
MAX_WAIT_S = 30
STREAM_MAX_S = 600
"""An event stream ends after this long; the client resumes it with Last-Event-ID."""
FINAL = (SHIPPED, CANCELLED)
STATUS_AFTER = {
    OrderPlaced.TYPE: PENDING,
    OrderRejected.TYPE: CANCELLED,
    OrderPaid.TYPE: PAID,
    OrderCancelled.TYPE: CANCELLED,
    OrderShipped.TYPE: SHIPPED,
}
"""The status an order has right after each of its events."""
WAITING_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such order of yours"},
    429: {"description": "too many long polls or streams of yours at once"},
}
"""What a route that waits on an order answers besides the order."""
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


class OrderItemOut(BaseModel):
    product_id: UUID
    quantity: int
    unit_price: str


class HistoryEntry(BaseModel):
    status: str
    reason: str | None
    at: str


class PaymentOut(BaseModel):
    status: str
    amount: str


class OrderPublic(BaseModel):
    id: UUID
    user_id: UUID
    status: str
    reason: str | None
    total_price: str
    items: list[OrderItemOut]
    created_at: str
    history: list[HistoryEntry]
    payment: PaymentOut | None


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


async def _visible_order(
    upstream: Upstream, order_id: UUID, user: Principal, *, details: bool = True
) -> Any | None:
    """The order if this user may see it; another customer's order does not exist for them.
    Without ``details``, only its owner and status (one cheap read in order_svc)."""
    path = f"/orders/{order_id}" if details else f"/orders/{order_id}/status"
    order = await upstream.find("order", path)
    if order is None or (not user.is_admin and order["user_id"] != str(user.id)):
        return None
    return order


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
            await _visible_order(upstream, order_id, user, details=False)
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
        existing = await _visible_order(upstream, order_id, user, details=False)
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


@router.get("/orders", response_model=Page)
async def list_orders(
    user: CurrentUser,
    upstream: Upstream,
    user_id: Annotated[UUID | None, Query(description="admins only: one user's orders")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Your orders (an admin sees everyone's, or one user's with ``user_id``)."""
    if not user.is_admin:
        if user_id is not None and user_id != user.id:
            raise HTTPException(403, "customers see their own orders only")
        user_id = user.id
    return await upstream.relay(
        "order", "/orders", {"user_id": user_id, "limit": limit, "cursor": cursor}
    )


@router.get(
    "/orders/{order_id}",
    responses=WAITING_RESPONSES,
)
async def read_order(
    order_id: UUID,
    request: Request,
    user: CurrentUser,
    upstream: Upstream,
    watch: Watch,
    watchers: Waiting,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="seconds to wait while it is Pending")
    ] = 0,
) -> OrderPublic:
    """One order with its items, history and payment. With ``wait``, answers as soon as the
    order leaves Pending, or when the time is up. An order that does not exist (or is not
    yours) answers 404 at once, ``wait`` or not."""
    deadline = time.monotonic() + wait
    with watch.changes(order_id) as news:
        order = await _visible_order(upstream, order_id, user)
        if order is None:
            raise HTTPException(404, "order not found")
        if wait > 0 and order["status"] == PENDING:
            with watchers.take(str(user.id), client_address(request.scope)):
                release_slot(request.scope)  # waiting is not the gateway's work
                while order["status"] == PENDING:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not await news_or_leaving(
                        news, request.receive, remaining
                    ):
                        break
                    news.clear()
                    order = await _visible_order(upstream, order_id, user) or order
    payment = await upstream.find("payment", f"/orders/{order_id}/payment")
    return OrderPublic.model_validate(
        {
            **order,
            "payment": None
            if payment is None
            else {"status": payment["status"], "amount": payment["amount"]},
        }
    )


@router.get(
    "/orders/{order_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "one `status` event per step: `{status, reason, at}`, id its number",
        },
        **WAITING_RESPONSES,
    },
)
async def order_events(
    order_id: UUID,
    request: Request,
    user: CurrentUser,
    upstream: Upstream,
    watch: Watch,
    watchers: Waiting,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="resume after this step"),
    ] = None,
) -> EventSourceResponse:
    """The order's saga as Server-Sent Events: one ``status`` event per step (Pending, Paid,
    Cancelled with its reason, Shipped), each with its step number as id. The stream ends when
    the order is Shipped or Cancelled (or after 10 minutes); a client that reconnects with
    ``Last-Event-ID`` gets the steps after that one."""
    if await _visible_order(upstream, order_id, user) is None:
        raise HTTPException(404, "order not found")
    place = watchers.take(str(user.id), client_address(request.scope))
    release_slot(request.scope)

    async def steps() -> AsyncIterator[ServerSentEvent]:
        sent = last_event_id or 0
        deadline = time.monotonic() + STREAM_MAX_S
        try:
            with watch.changes(order_id) as news:
                while True:
                    news.clear()
                    order = await _visible_order(upstream, order_id, user)
                    if order is None:
                        return
                    history = order["history"]
                    for number, step in enumerate(history[sent:], start=sent + 1):
                        yield ServerSentEvent(
                            data=orjson.dumps(step).decode(), event="status", id=str(number)
                        )
                    sent = max(sent, len(history))
                    remaining = deadline - time.monotonic()
                    if order["status"] in FINAL or remaining <= 0:
                        return
                    await news.wait(remaining)
        finally:
            place.release()

    return EventSourceResponse(steps(), ping=15, background=BackgroundTask(place.release))


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    responses={
        404: {"description": "no such order of yours"},
        409: {"description": "shipped or already cancelled"},
    },
)
async def cancel_order(
    order_id: UUID, user: CurrentUser, upstream: Upstream, commands: Commands
) -> Accepted:
    """Cancel a Pending or Paid order; a paid one is refunded and its stock returns."""
    order = await _visible_order(upstream, order_id, user, details=False)
    if order is None:
        raise HTTPException(404, "order not found")
    if order["status"] not in (PENDING, PAID):
        raise HTTPException(409, f"an order that is {order['status']} cannot be cancelled")
    who = "an admin" if user.is_admin and order["user_id"] != str(user.id) else "the customer"
    await commands.send(CancelOrder(order_id=order_id, reason=f"Cancelled by {who}"))
    return Accepted(id=order_id)


@router.post(
    "/orders/{order_id}/ship",
    status_code=202,
    responses={
        **ADMIN_RESPONSES,
        404: {"description": "no such order"},
        409: {"description": "not paid, or already shipped or cancelled"},
    },
)
async def ship_order(
    order_id: UUID, user: Admin, upstream: Upstream, commands: Commands
) -> Accepted:
    """Ship a Paid order (admin)."""
    order = await _visible_order(upstream, order_id, user, details=False)
    if order is None:
        raise HTTPException(404, "order not found")
    if order["status"] != PAID:
        raise HTTPException(409, f"only Paid orders ship; this one is {order['status']}")
    await commands.send(ShipOrder(order_id=order_id))
    return Accepted(id=order_id)
