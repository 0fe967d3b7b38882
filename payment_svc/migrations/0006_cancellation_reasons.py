"""cancelled_orders: why each order was cancelled, the reason of the refund the sweep makes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cancelled_orders", sa.Column("reason", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("cancelled_orders", "reason")
