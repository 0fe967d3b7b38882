"""The inbox: the ids of the messages a service has applied, written in the effect's transaction.

A redelivered message (after a crash, a rebalance or a rewind) finds its id and changes nothing.
An id is kept for as long as Kafka may still deliver its message, then forgotten
(:func:`forget_old`): the inbox does not grow for ever.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from sqlalchemy import (
    Boolean,
    CursorResult,
    DateTime,
    Integer,
    Interval,
    String,
    Uuid,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.dml import ReturningInsert

from common.statements import Direct, array_rows, table_of
from common.unit_of_work import SessionMaker, unit_of
from schemas.envelope import Envelope

M = TypeVar("M")


class InboxMixin:
    """Mix into a service's declarative base: ``class Inbox(InboxMixin, Base)``."""

    __tablename__ = "inbox"

    if TYPE_CHECKING:  # the declarative base supplies the keyword constructor

        def __init__(self, **columns: Any) -> None: ...

    message_id: Mapped[UUID] = mapped_column(primary_key=True)
    message_type: Mapped[str] = mapped_column(String(100))
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    """When the message was last delivered: a redelivery (a rewind, a re-driven dead letter)
    starts the id's time in the inbox again, since its new copy stays in the topic as long."""
    duplicates: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """How many redeliveries of this message were absorbed: proof that duplicates were tried."""


_claims: dict[type[InboxMixin], Direct] = {}
"""Each inbox's claim statement, built once."""


async def claim(
    session: AsyncSession, inbox: type[InboxMixin], messages: Sequence[tuple[UUID, str]]
) -> None:
    """Record a whole batch of message ids with one statement, at the start of the batch's
    transaction (as its first statement, it begins the transaction in the same round trip:
    :meth:`common.statements.Direct.rows_beginning`); :func:`first_delivery` then answers from what
    this found, without a query. An id repeated inside the batch is a first delivery once,
    then a duplicate."""
    repeats = Counter(message_id for message_id, _ in messages)
    types = dict(messages)
    rows = await _claim_statement(inbox).rows_beginning(
        session,
        {
            "message_id": list(types),
            "message_type": list(types.values()),
            "duplicates": [repeats[message_id] - 1 for message_id in types],
        },
    )
    unit_of(session).claimed = {message_id: bool(fresh) for message_id, fresh in rows}


def _claim_statement(inbox: type[InboxMixin]) -> Direct:
    if inbox not in _claims:
        _claims[inbox] = Direct(_build_claim(inbox))
    return _claims[inbox]


def _build_claim(inbox: type[InboxMixin]) -> ReturningInsert[UUID, bool]:
    table = table_of(inbox)
    batch = array_rows({"message_id": Uuid, "message_type": String, "duplicates": Integer})
    columns = ["message_id", "message_type", "duplicates"]
    statement = insert(table).from_select(columns, select(*(batch.c[name] for name in columns)))
    return statement.on_conflict_do_update(
        index_elements=[table.c.message_id],
        set_={
            "duplicates": table.c.duplicates + statement.excluded.duplicates + 1,
            "processed_at": func.now(),
        },
    ).returning(table.c.message_id, literal_column("xmax = 0", Boolean))


async def first_delivery(
    session: AsyncSession, inbox: type[InboxMixin], message_id: UUID, message_type: str
) -> bool:
    """Record ``message_id``; False when it was already recorded (a redelivery).

    Call it inside the transaction that applies the message: if that transaction rolls back,
    the record goes with it and the message will be applied on its next delivery.
    """
    claimed = unit_of(session).claimed
    if claimed is not None and message_id in claimed:
        fresh = claimed[message_id]
        claimed[message_id] = False  # the same id again in this transaction is a duplicate
        return fresh
    statement = insert(inbox).values(message_id=message_id, message_type=message_type)
    first: bool | None = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=[inbox.message_id],
            set_={"duplicates": inbox.duplicates + 1, "processed_at": func.now()},
        ).returning(literal_column("xmax = 0"))  # a fresh row has no deleting transaction
    )
    return bool(first)


async def first_deliveries(
    session: AsyncSession, inbox: type[InboxMixin], messages: Iterable[tuple[Envelope, M]]
) -> list[tuple[Envelope, M]]:
    """The messages of a run that are delivered for the first time (see :func:`first_delivery`),
    in order; redeliveries are left out."""
    return [
        (envelope, message)
        for envelope, message in messages
        if await first_delivery(session, inbox, envelope.id, envelope.type)
    ]


async def forget_old(
    sessionmaker: SessionMaker, inbox: type[InboxMixin], keep: timedelta, *, batch: int = 10_000
) -> int:
    """Delete the ids last delivered more than ``keep`` ago, ``batch`` rows a transaction (each
    a short one, beside the consumers' batches); returns how many went. ``processed_at`` has no
    index (it would cost every claim): a round reads the whole table, some 100 ms of
    PostgreSQL's time for a million ids, every ``INBOX_FORGET_INTERVAL_S``."""
    table = table_of(inbox)
    old = (
        select(table.c.message_id)
        .where(table.c.processed_at < func.now() - bindparam("keep", type_=Interval))
        .limit(bindparam("batch"))
    )
    statement = delete(table).where(table.c.message_id.in_(old.scalar_subquery()))
    forgotten = 0
    while True:
        async with sessionmaker.begin() as session:
            result = await session.execute(statement, {"keep": keep, "batch": batch})
        deleted: int = cast(CursorResult[Any], result).rowcount
        forgotten += deleted
        if deleted < batch:
            return forgotten
