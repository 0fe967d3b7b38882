"""charge_attempts: charges begun and not yet recorded; what caused each cancellation

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "charge_attempts",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(10, 2), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("correlation_id", sa.Uuid(), nullable=False),
        sa.Column("causation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index("ix_charge_attempts_started_at", "charge_attempts", ["started_at"])
    op.add_column("cancelled_orders", sa.Column("correlation_id", sa.Uuid(), nullable=True))
    op.add_column("cancelled_orders", sa.Column("causation_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("cancelled_orders", "causation_id")
    op.drop_column("cancelled_orders", "correlation_id")
    op.drop_index("ix_charge_attempts_started_at", table_name="charge_attempts")
    op.drop_table("charge_attempts")
