"""movements' recording sequence; indexes for a product's ledger and its latest movement

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:22:45.142631
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "inventory_movements",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
    )
    op.drop_index(op.f("ix_inventory_movements_product_id"), table_name="inventory_movements")
    op.create_index(
        "ix_inventory_movements_product_id_created_at_id",
        "inventory_movements",
        ["product_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_inventory_movements_product_id_seq",
        "inventory_movements",
        ["product_id", "seq"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_inventory_movements_product_id_seq", table_name="inventory_movements")
    op.drop_index(
        "ix_inventory_movements_product_id_created_at_id", table_name="inventory_movements"
    )
    op.create_index(
        op.f("ix_inventory_movements_product_id"),
        "inventory_movements",
        ["product_id"],
        unique=False,
    )
    op.drop_column("inventory_movements", "seq")
