"""Cancelling an order (its customer or an admin) and shipping it (an admin): its status is
checked here before the command goes to order_svc, so that a request that cannot apply is a 409
at once."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException

from gateway_svc.api.deps import Accepted, Commands, Upstream
from gateway_svc.api.order_reads import visible_order
from gateway_svc.auth import ADMIN_RESPONSES, Admin, CurrentUser, Principal
from schemas.orders import PAID, PENDING, CancelOrder, ShipOrder

router = APIRouter(tags=["orders"])


async def _found(upstream: Upstream, order_id: UUID, user: Principal) -> Any:
    """The order as ``user`` may see it; 404 when there is none (or it is another's)."""
    order = await visible_order(upstream, order_id, user, details=False)
    if order is None:
        raise HTTPException(404, "order not found")
    return order


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
    order = await _found(upstream, order_id, user)
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
    order = await _found(upstream, order_id, user)
    if order["status"] != PAID:
        raise HTTPException(409, f"only Paid orders ship; this one is {order['status']}")
    await commands.send(ShipOrder(order_id=order_id))
    return Accepted(id=order_id)
