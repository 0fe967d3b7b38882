"""notification_svc's reads for its HTTP API; no writes."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select

from common.pagination import page_after
from common.unit_of_work import SessionMaker
from notification_svc.models import Notification


async def list_notifications(
    sessionmaker: SessionMaker, user_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> Sequence[Notification]:
    """A user's notifications, newest first, those after ``after`` in that order."""
    query = select(Notification).where(Notification.user_id == user_id)
    query = page_after(
        query, Notification.created_at, Notification.id, after=after, limit=limit, newest_first=True
    )
    async with sessionmaker() as session:
        return (await session.scalars(query)).all()
