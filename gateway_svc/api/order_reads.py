"""Reading orders: a user's list, one order (``?wait`` long-polls while it is Pending) and its
saga's steps as Server-Sent Events. Another customer's order does not exist for a user, so that
an order id reveals nothing."""

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from common.pagination import Cursor, Limit
from gateway_svc.api.accounts import Page
from gateway_svc.api.deps import Upstream, Waiting, Watch
from gateway_svc.auth import CurrentUser, Principal
from gateway_svc.middleware import client_address, release_slot
from gateway_svc.watch import news_or_leaving
from schemas.orders import CANCELLED, PENDING, SHIPPED

router = APIRouter(tags=["orders"])

MAX_WAIT_S = 30
STREAM_MAX_S = 600
"""An event stream ends after this long; the client resumes it with Last-Event-ID."""
FINAL = (SHIPPED, CANCELLED)
WAITING_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such order of yours"},
    429: {"description": "too many long polls or streams of yours at once"},
}
"""What a route that waits on an order answers besides the order."""


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


async def visible_order(
    upstream: Upstream, order_id: UUID, user: Principal, *, details: bool = True
) -> Any | None:
    """The order if this user may see it; another customer's order does not exist for them.
    Without ``details``, only its owner and status (one cheap read in order_svc)."""
    path = f"/orders/{order_id}" if details else f"/orders/{order_id}/status"
    order = await upstream.find("order", path)
    if order is None or (not user.is_admin and order["user_id"] != str(user.id)):
        return None
    return order


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
        order = await visible_order(upstream, order_id, user)
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
                    order = await visible_order(upstream, order_id, user) or order
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
    if await visible_order(upstream, order_id, user) is None:
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
                    order = await visible_order(upstream, order_id, user)
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
