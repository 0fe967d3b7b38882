"""a product's ledger is read in recording order (seq): the created_at index goes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 14:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(
        "ix_inventory_movements_product_id_created_at_id", table_name="inventory_movements"
    )


def downgrade() -> None:
    op.create_index(
        "ix_inventory_movements_product_id_created_at_id",
        "inventory_movements",
        ["product_id", "created_at", "id"],
        unique=False,
    )
