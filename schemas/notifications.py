"""Contracts owned by notification_svc."""

from typing import ClassVar
from uuid import UUID

from schemas.envelope import Event, register
from schemas.topics import NOTIFICATIONS_EVENTS


class _NotificationEvent(Event):
    TOPIC = NOTIFICATIONS_EVENTS
    KEY_FIELD: ClassVar[str] = "user_id"


@register
class NotificationSent(_NotificationEvent):
    """A notification was delivered to its user."""

    TYPE = "NotificationSent"
    notification_id: UUID
    user_id: UUID
    type: str


@register
class NotificationFailed(_NotificationEvent):
    """A notification could not be delivered; it is tried again later."""

    TYPE = "NotificationFailed"
    notification_id: UUID
    user_id: UUID
    type: str
    reason: str
