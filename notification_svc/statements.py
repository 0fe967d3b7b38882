"""notification_svc's compiled statements: the notifications a batch of events adds, and the
sending loop's read and record, each built once (a statement is compiled once, and deferred rows
are grouped by the statement's identity)."""

from sqlalchemy import func, or_, select

from common.statements import Direct, InsertRows, UpdateRows, table_of
from notification_svc.models import PENDING, Notification, UserContact

_NOTIFICATIONS = table_of(Notification)
_CONTACTS = table_of(UserContact)

ADD_NOTIFICATION = InsertRows(_NOTIFICATIONS, skip_conflicts_on=["event_id"])
"""One notification per event: the same event under another message id adds nothing."""
RECORD_ATTEMPTS = UpdateRows(_NOTIFICATIONS, match="id")
"""Bound with the attempt's outcome: status, attempts, sent_at, next_attempt_at, last_error."""


def due(limit: int) -> Direct:
    """Due Pending notifications whose user's email is known (the others wait for their
    UserRegistered), oldest first, locked; built once per sending loop, with its batch size."""
    n = _NOTIFICATIONS.c
    return Direct(
        select(
            n.id,
            n.user_id,
            n.type,
            n.message,
            n.attempts,
            n.last_error,
            n.event_id,
            n.correlation_id,
            _CONTACTS.c.name,
            _CONTACTS.c.email,
        )
        .join(_CONTACTS, _CONTACTS.c.user_id == n.user_id)
        .where(
            n.status == PENDING,
            or_(n.next_attempt_at.is_(None), n.next_attempt_at <= func.now()),
        )
        .order_by(n.created_at, n.id)
        .limit(limit)
        # Replicas share the work: each takes rows that no other has locked.
        .with_for_update(of=_NOTIFICATIONS, skip_locked=True)
    )
