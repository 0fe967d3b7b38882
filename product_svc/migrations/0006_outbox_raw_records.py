"""the outbox holds raw records (dead letters): headers of their own, key and payload nullable

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 17:30:00.000000
"""

from collections.abc import Sequence

from common.migration_steps import outbox_holds_messages_only, outbox_holds_raw_records

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_holds_raw_records()


def downgrade() -> None:
    outbox_holds_messages_only()
