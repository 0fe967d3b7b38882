"""The sending loop: Pending notifications go out through the sender port, then Sent or, after
the last failed attempt, Failed; each outcome is published (NotificationSent/Failed)."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import SessionMaker
from common.outbox import stage
from notification_svc import domain
from notification_svc.models import FAILED, PENDING, SENT, Notification, Outbox, UserContact
from notification_svc.ports import NotificationSender
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
        self.sent = 0
        self.failed_attempts = 0

    async def send_pending(self) -> int:
        """Try to send one batch of due Pending notifications whose user's email is known (the
        others wait for their UserRegistered); returns how many were tried."""
        async with self._sessionmaker.begin() as session:
            rows = (
                await session.execute(
                    select(Notification, UserContact.name, UserContact.email)
                    .join(UserContact, UserContact.user_id == Notification.user_id)
                    .where(
                        Notification.status == PENDING,
                        or_(
                            Notification.next_attempt_at.is_(None),
                            Notification.next_attempt_at <= func.now(),
                        ),
                    )
                    .order_by(Notification.created_at, Notification.id)
                    .limit(self._settings.notification_batch_size)
                    # Replicas share the work: each takes rows that no other has locked.
                    .with_for_update(of=Notification, skip_locked=True)
                )
            ).all()
            for notification, name, email in rows:
                await self._send(session, notification, name, email)
        return len(rows)

    async def _send(
        self, session: AsyncSession, notification: Notification, name: str, email: str
    ) -> None:
        notification.attempts += 1
        try:
            async with asyncio.timeout(self._settings.notification_send_timeout_s):
                await self._sender.send(
                    notification_id=notification.id,
                    to=email,
                    subject=domain.subject(notification.type),
                    body=domain.body(name, notification.message),
                )
        except Exception as exc:
            self.failed_attempts += 1
            self._failed(session, notification, f"{type(exc).__name__}: {exc}"[:1000])
            return
        notification.status = SENT
        notification.sent_at = datetime.now(UTC)
        notification.next_attempt_at = None
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

    def _failed(self, session: AsyncSession, notification: Notification, error: str) -> None:
        notification.last_error = error
        outcome = domain.after_failure(
            notification.attempts,
            max_attempts=self._settings.notification_attempts,
            backoff_s=self._settings.notification_backoff_s,
        )
        if isinstance(outcome, domain.Retry):
            log.warning(
                "notification %s not sent (attempt %d), retrying in %.1fs: %s",
                notification.id,
                notification.attempts,
                outcome.delay_s,
                error,
            )
            notification.next_attempt_at = datetime.now(UTC) + timedelta(seconds=outcome.delay_s)
            return
        log.error(
            "notification %s failed %d times: %s", notification.id, notification.attempts, error
        )
        notification.status = FAILED
        notification.next_attempt_at = None
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
