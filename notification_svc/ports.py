"""notification_svc's port to the outside: the channel that delivers a notification."""

from typing import Protocol
from uuid import UUID


class NotificationSender(Protocol):
    async def send(self, *, notification_id: UUID, to: str, subject: str, body: str) -> None:
        """Deliver one message to ``to``; raises when it could not. The same
        ``notification_id`` may come again after a crash: a sender should deliver it once."""
        ...
