"""Migration steps that every service's outbox takes alike, each called from a revision in the
service's own ``migrations/`` folder (Alembic keeps one history per service)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB


def outbox_holds_raw_records() -> None:
    """The outbox can hold a record to publish as it is, a dead letter: headers of its own, and
    a key or a value that may be absent (a record without a key, a tombstone)."""
    op.add_column("outbox", sa.Column("headers", JSONB(), nullable=True))
    op.alter_column("outbox", "key", existing_type=sa.LargeBinary(), nullable=True)
    op.alter_column("outbox", "payload", existing_type=sa.LargeBinary(), nullable=True)


def outbox_holds_messages_only() -> None:
    """Undoes :func:`outbox_holds_raw_records` (the outbox must hold no raw record by then)."""
    op.alter_column("outbox", "payload", existing_type=sa.LargeBinary(), nullable=False)
    op.alter_column("outbox", "key", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_column("outbox", "headers")
