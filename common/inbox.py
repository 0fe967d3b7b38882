"""The inbox: the ids of the messages a service has applied, written in the effect's transaction.

A redelivered message (after a crash, a rebalance or a rewind) finds its id and changes nothing.
"""

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import DateTime, Integer, String, func, literal_column, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column


class InboxMixin:
    """Mix into a service's declarative base: ``class Inbox(InboxMixin, Base)``."""

    __tablename__ = "inbox"

    if TYPE_CHECKING:  # the declarative base supplies the keyword constructor

        def __init__(self, **columns: Any) -> None: ...

    message_id: Mapped[UUID] = mapped_column(primary_key=True)
    message_type: Mapped[str] = mapped_column(String(100))
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    duplicates: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """How many redeliveries of this message were absorbed: proof that duplicates were tried."""


async def first_delivery(
    session: AsyncSession, inbox: type[InboxMixin], message_id: UUID, message_type: str
) -> bool:
    """Record ``message_id``; False when it was already recorded (a redelivery).

    Call it inside the transaction that applies the message: if that transaction rolls back,
    the record goes with it and the message will be applied on its next delivery.
    """
    statement = insert(inbox).values(message_id=message_id, message_type=message_type)
    first: bool | None = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=[inbox.message_id], set_={"duplicates": inbox.duplicates + 1}
        ).returning(literal_column("xmax = 0"))  # a fresh row has no deleting transaction
    )
    return bool(first)
