"""Dead letters: records that no retry can apply, written to the service's dead-letter topic with
why and where from, at most once per origin offset.

A consumer with a database stages a dead letter in its outbox, in the transaction of the batch
that held the record, and claims the letter's id (derived from the record's topic, partition and
offset) in its inbox in that same transaction. A batch rolled back takes its letters with it; a
batch delivered again after its commit (a crash before the offset commit, a rebalance) finds the
claim and writes nothing. A consumer without a database publishes the letter at once.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid5

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncSession

from common.inbox import InboxMixin, first_delivery
from common.outbox import OutboxMixin, stage_record
from common.producer import KafkaProducerHolder
from common.unit_of_work import write_deferred
from schemas.topics import dead_letter_topic

log = logging.getLogger(__name__)

DEAD_LETTER = "dead-letter"
"""The inbox type of a dead letter's claim, and the outbox type of its row."""
_ORIGINS = UUID("6d1f3a52-8f0e-4d57-9c2b-5b0e2a7c4d11")
"""The namespace of dead letters' ids (uuid5 of the origin)."""


@dataclass(frozen=True)
class DeadLetter:
    """A record that goes to the dead-letter topic, and why."""

    record: ConsumerRecord[bytes, bytes]
    reason: str
    attempts: int
    """Tries of its handler; 0 for a record that could not be read."""

    @property
    def key(self) -> bytes | None:
        """The record's key; an empty one for a record with neither key nor value, which a
        producer refuses to send."""
        record = self.record
        return b"" if record.key is None and record.value is None else record.key

    @property
    def id(self) -> UUID:
        """The same for every delivery of the record: its origin's topic, partition and offset.
        A re-driven message is a new record (another offset), dead-lettered again if it fails."""
        record = self.record
        return uuid5(_ORIGINS, f"{record.topic}/{record.partition}/{record.offset}")

    def headers(self, service: str) -> list[tuple[str, bytes]]:
        """The record's own headers, then why it failed and where it came from."""
        record = self.record
        return [
            *(record.headers or ()),
            ("dlq.reason", self.reason[:2000].encode()),
            ("dlq.service", service.encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.attempts", str(self.attempts).encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
            ("dlq.written_at", str(record.timestamp).encode()),
        ]


def reason_class(letter: DeadLetter) -> str:
    """Why a letter was written, in one word (the ``reason`` label of its counter): its handler
    kept failing, or which way its record could not be read (the reasons of
    :func:`common.handlers.route`)."""
    reason = letter.reason
    if letter.attempts:
        return "handler_failed"
    if reason.startswith("empty value"):
        return "tombstone"
    if reason.startswith("not a valid envelope"):
        return "malformed"
    if reason.startswith("no contract for"):
        return "unknown_version" if " version " in reason else "unknown_type"
    if " could not be upcast: " in reason:
        return "upcast_failed"
    if reason.startswith("invalid "):
        return "invalid_data"
    return "unreadable"


class DeadLetters:
    """Writes a service's dead letters: staged in its outbox once per origin when the service
    has an outbox and an inbox and the letter comes with the batch's session, else published at
    once."""

    def __init__(
        self,
        service: str,
        producer: KafkaProducerHolder,
        outbox: type[OutboxMixin] | None = None,
        inbox: type[InboxMixin] | None = None,
    ) -> None:
        self._service = service
        self._topic = dead_letter_topic(service).name
        self._producer = producer
        self._outbox = outbox
        self._inbox = inbox

    @property
    def staged(self) -> bool:
        """Whether letters go through the outbox, each claimed in the inbox (the batch's claim
        may take their ids along; :meth:`write` claims the others one by one)."""
        return self._outbox is not None and self._inbox is not None

    async def write(self, letter: DeadLetter, session: AsyncSession | None = None) -> bool:
        """Write ``letter``, in ``session``'s transaction when it is staged; False when its origin
        was dead-lettered already (a batch delivered again)."""
        record = letter.record
        if session is None or self._outbox is None or self._inbox is None:
            await self._publish(letter)
        elif await first_delivery(session, self._inbox, letter.id, DEAD_LETTER):
            stage_record(
                session,
                self._outbox,
                record_id=letter.id,
                record_type=DEAD_LETTER,
                topic=self._topic,
                key=letter.key,
                value=record.value,
                headers=letter.headers(self._service),
            )
            # Now, not at the batch's end: the next use case's savepoint would write it with its
            # own rows, and a failure there would roll it back while its claim stays.
            await write_deferred(session)
        else:
            return False
        log.error(
            "dead-lettering %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            letter.reason,
        )
        return True

    async def _publish(self, letter: DeadLetter) -> None:
        record = letter.record
        producer = await self._producer.get()
        try:
            await producer.send_and_wait(
                self._topic,
                value=record.value,
                key=letter.key,
                headers=letter.headers(self._service),
            )
        except KafkaError:
            await self._producer.reset()
            raise
