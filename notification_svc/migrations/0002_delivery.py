"""delivery: one notification per event, attempts, sending time, last error

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:24:40.719351
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("event_id", sa.Uuid(), nullable=True))
    # Rows written before this revision have no event id; their own id is as unique.
    op.execute("UPDATE notifications SET event_id = id WHERE event_id IS NULL")
    op.alter_column("notifications", "event_id", nullable=False)
    op.create_unique_constraint("notifications_event_id_key", "notifications", ["event_id"])
    op.add_column("notifications", sa.Column("correlation_id", sa.Uuid(), nullable=True))
    op.add_column(
        "notifications",
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "notifications",
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("notifications", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notifications", sa.Column("last_error", sa.Text(), nullable=True))
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'Pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_notifications_pending",
        table_name="notifications",
        postgresql_where=sa.text("status = 'Pending'"),
    )
    op.drop_column("notifications", "last_error")
    op.drop_column("notifications", "sent_at")
    op.drop_column("notifications", "next_attempt_at")
    op.drop_column("notifications", "attempts")
    op.drop_column("notifications", "correlation_id")
    op.drop_constraint("notifications_event_id_key", "notifications", type_="unique")
    op.drop_column("notifications", "event_id")
