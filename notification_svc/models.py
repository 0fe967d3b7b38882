"""notification_svc's tables: the seed's notifications, its copy of user contacts, outbox, inbox."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, Index, String, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.inbox import InboxMixin
from common.outbox import OutboxMixin
from schemas.ids import new_id

PENDING, SENT, FAILED = "Pending", "Sent", "Failed"


class Base(DeclarativeBase):
    pass


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index(
            "ix_notifications_pending",
            "created_at",
            postgresql_where=text(f"status = '{PENDING}'"),
        ),
    )
    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[UUID] = mapped_column(index=True)
    type: Mapped[str] = mapped_column(String(50))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(50), default=PENDING)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Unique: one notification per event, even if the event came again under another inbox.
    event_id: Mapped[UUID] = mapped_column(unique=True)
    correlation_id: Mapped[UUID | None]
    """The saga of the event, carried on to NotificationSent/NotificationFailed."""
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """While Pending: not sent before this moment (backoff after a failure); None: at once."""
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class UserContact(Base):
    """The copy of user_svc's contact data, kept up to date from users.events."""

    __tablename__ = "user_contacts"
    user_id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Outbox(OutboxMixin, Base):
    pass


class Inbox(InboxMixin, Base):
    pass
