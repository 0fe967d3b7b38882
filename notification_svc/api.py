"""notification_svc's HTTP API, called by the gateway (never by clients directly)."""

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from common.http import Reads
from common.pagination import Cursor, Limit, decode_cursor, page
from notification_svc import queries

router = APIRouter(tags=["notifications"])


class NotificationPublic(BaseModel):
    id: UUID
    type: str
    message: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    next_cursor: str | None


@router.get("/notifications", responses={422: {"description": "bad user id or cursor"}})
async def list_notifications(
    user_id: UUID, sessions: Reads, limit: Limit = 50, cursor: Cursor = None
) -> NotificationPage:
    """One user's notifications, newest first; status ``Pending``, ``Sent`` or ``Failed``."""
    rows = await queries.list_notifications(
        sessions, user_id, after=decode_cursor(cursor), limit=limit + 1
    )
    items, next_cursor = page(rows, limit)
    return NotificationPage(
        items=[
            NotificationPublic(
                id=row.id,
                type=row.type,
                message=row.message,
                status=row.status,
                created_at=row.created_at,
                sent_at=row.sent_at,
            )
            for row in items
        ],
        next_cursor=next_cursor,
    )
