"""notification_svc's use cases; each is one transaction (inbox check, change)."""

from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import first_delivery
from common.statements import defer_insert
from common.unit_of_work import SessionMaker
from notification_svc import domain, statements
from notification_svc.models import PENDING, Inbox, UserContact
from schemas.envelope import Envelope
from schemas.ids import new_id
from schemas.users import UserRegistered, UserUpdated


async def welcome_user(
    sessionmaker: SessionMaker, envelope: Envelope, event: UserRegistered
) -> None:
    """Remember the new user's contact data and write their welcome notification."""
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        await _upsert_contact(session, event.user_id, event.name, event.email)
        _record(session, envelope, event.user_id, domain.welcome(event.name))


async def update_contact(
    sessionmaker: SessionMaker, envelope: Envelope, event: UserUpdated
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        await _upsert_contact(session, event.user_id, event.name, event.email)


async def notify_user(
    sessionmaker: SessionMaker, envelope: Envelope, event: domain.NotifiedEvent
) -> None:
    """Write the notification of an order or payment event; the sending loop delivers it."""
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        _record(session, envelope, event.user_id, domain.describe(event))


def _record(session: AsyncSession, envelope: Envelope, user_id: UUID, draft: domain.Draft) -> None:
    """Written with the batch's other notifications in one statement (the sending loop reads
    them only once the batch has committed)."""
    defer_insert(
        session,
        statements.ADD_NOTIFICATION,
        {
            "id": new_id(),
            "user_id": user_id,
            "type": draft.type,
            "message": draft.message,
            "status": PENDING,
            "event_id": envelope.id,
            "correlation_id": envelope.correlation_id,
        },
    )


async def _upsert_contact(session: AsyncSession, user_id: UUID, name: str, email: str) -> None:
    statement = insert(UserContact).values(user_id=user_id, name=name, email=email)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[UserContact.user_id],
            set_={"name": statement.excluded.name, "email": statement.excluded.email},
        )
    )
