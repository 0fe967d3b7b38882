"""notification_svc's port to the outside: the channel that delivers notifications."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True)
class Mail:
    notification_id: UUID
    to: str
    subject: str
    body: str


class NotificationSender(Protocol):
    async def send(self, mails: Sequence[Mail]) -> list[Exception | None]:
        """Deliver each of ``mails`` (a batch, so that a channel can deliver them together);
        returns, in their order, ``None`` for each delivered and the error for each not.
        Raising means none was. The same ``notification_id`` may come again after a crash:
        a sender should deliver it once."""
        ...
