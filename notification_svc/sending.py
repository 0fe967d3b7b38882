"""The sending loop: Pending notifications go out through the sender port, then Sent or, after
the last failed attempt, Failed; each outcome is published (NotificationSent/Failed)."""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from common.outbox import stage
from common.unit_of_work import SessionMaker
from notification_svc import domain, statements
from notification_svc.models import FAILED, PENDING, SENT, Outbox
from notification_svc.ports import Mail, NotificationSender
from notification_svc.settings import Settings
from schemas.notifications import NotificationFailed, NotificationSent

log = logging.getLogger(__name__)


class Dispatcher:
    """Sends due notifications; :meth:`send_pending` is one step, :meth:`run` the loop."""

    def __init__(
        self, sessionmaker: SessionMaker, sender: NotificationSender, settings: Settings
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sender = sender
        self._settings = settings
        self._due = statements.due(settings.notification_batch_size)
        self.sent = 0
        self.failed_attempts = 0

    async def send_pending(self) -> int:
        """Try to send one batch of due Pending notifications; returns how many were tried."""
        async with self._sessionmaker.begin() as session:
            due = await self._due.rows(session)
            if due:
                errors = await self._deliver(due)
                outcomes = [
                    self._failed(session, notification, error)
                    if error is not None
                    else self._sent(session, notification)
                    for notification, error in zip(due, errors, strict=True)
                ]
                await statements.RECORD_ATTEMPTS.execute(session, outcomes)
        return len(due)

    async def _deliver(self, due: Sequence[Any]) -> list[str | None]:
        """Hand the batch to the sender; per notification, ``None`` or why it was not sent."""
        mails = [
            Mail(
                notification_id=notification.id,
                to=notification.email,
                subject=domain.subject(notification.type),
                body=domain.body(notification.name, notification.message),
            )
            for notification in due
        ]
        try:
            async with asyncio.timeout(self._settings.notification_send_timeout_s):
                errors: Sequence[BaseException | None] = await self._sender.send(mails)
        except Exception as exc:
            errors = [exc] * len(mails)
        return [None if error is None else _reason(error) for error in errors]

    def _sent(self, session: AsyncSession, notification: Any) -> dict[str, Any]:
        self.sent += 1
        sent = NotificationSent(
            notification_id=notification.id, user_id=notification.user_id, type=notification.type
        )
        # the outcome joins the saga of the event the notification came from, caused by it
        stage(
            session,
            Outbox,
            sent,
            correlation_id=notification.correlation_id,
            causation_id=notification.event_id,
        )
        return _outcome(
            notification,
            SENT,
            notification.attempts + 1,
            notification.last_error,
            sent_at=datetime.now(UTC),
        )

    def _failed(self, session: AsyncSession, notification: Any, error: str) -> dict[str, Any]:
        self.failed_attempts += 1
        attempts = notification.attempts + 1
        outcome = domain.after_failure(
            attempts,
            max_attempts=self._settings.notification_attempts,
            backoff_s=self._settings.notification_backoff_s,
        )
        if isinstance(outcome, domain.Retry):
            log.warning(
                "notification %s not sent (attempt %d), retrying in %.1fs: %s",
                notification.id,
                attempts,
                outcome.delay_s,
                error,
            )
            retry_at = datetime.now(UTC) + timedelta(seconds=outcome.delay_s)
            return _outcome(notification, PENDING, attempts, error, next_attempt_at=retry_at)
        log.error("notification %s failed %d times: %s", notification.id, attempts, error)
        failed = NotificationFailed(
            notification_id=notification.id,
            user_id=notification.user_id,
            type=notification.type,
            reason=error,
        )
        # the outcome joins the saga of the event the notification came from, caused by it
        stage(
            session,
            Outbox,
            failed,
            correlation_id=notification.correlation_id,
            causation_id=notification.event_id,
        )
        return _outcome(notification, FAILED, attempts, error)

    async def run(self) -> None:
        """Send whatever is due, then look again after ``notification_poll_s``."""
        while True:
            try:
                tried = await self.send_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sending notifications failed; retrying")
                tried = 0
            if tried < self._settings.notification_batch_size:
                await asyncio.sleep(self._settings.notification_poll_s)


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


def _outcome(
    notification: Any,
    status: str,
    attempts: int,
    last_error: str | None,
    *,
    sent_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": notification.id,
        "status": status,
        "attempts": attempts,
        "last_error": last_error,
        "sent_at": sent_at,
        "next_attempt_at": next_attempt_at,
    }
