"""Notification senders: a mailbox folder (the local default) and a fake for tests."""

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTPUTF8
from email.utils import format_datetime
from pathlib import Path
from uuid import UUID


class MailboxSender:
    """Delivers into a folder, one file a person can read per message (``<id>.eml``, headers
    then body): the local stand-in for a mail server. The same notification sent again replaces
    its own file, so a resend after a crash leaves one message."""

    def __init__(self, folder: Path, *, from_address: str = "shop@localhost") -> None:
        self._folder = folder
        self._from = from_address

    async def send(self, *, notification_id: UUID, to: str, subject: str, body: str) -> None:
        message = EmailMessage(policy=SMTPUTF8.clone(linesep="\n"))
        message["From"] = self._from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = f"<{notification_id}@shop.local>"
        message.set_content(body, cte="8bit")
        await asyncio.to_thread(self._write, notification_id, message.as_bytes())

    def _write(self, notification_id: UUID, content: bytes) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        final = self._folder / f"{notification_id}.eml"
        partial = final.with_suffix(".eml.tmp")
        partial.write_bytes(content)
        os.replace(partial, final)  # a reader never sees half a message


@dataclass(frozen=True)
class Delivered:
    notification_id: UUID
    to: str
    subject: str
    body: str


@dataclass
class FakeSender:
    """Records what it delivers; each notification's first ``failures`` sends fail
    (``failures=-1``: every send fails)."""

    failures: int = 0
    delivered: list[Delivered] = field(default_factory=list)
    attempts: Counter[UUID] = field(default_factory=Counter)

    async def send(self, *, notification_id: UUID, to: str, subject: str, body: str) -> None:
        self.attempts[notification_id] += 1
        if self.failures < 0 or self.attempts[notification_id] <= self.failures:
            raise ConnectionError(
                f"fake mail server refused attempt {self.attempts[notification_id]}"
            )
        self.delivered.append(Delivered(notification_id, to, subject, body))
