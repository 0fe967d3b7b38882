"""order list indexes, one line per product in an order

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:22:29.023626
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_order_items_order_id"), table_name="order_items")
    op.create_unique_constraint(
        "uq_order_items_order_id_product_id", "order_items", ["order_id", "product_id"]
    )
    op.drop_index(op.f("ix_orders_user_id"), table_name="orders")
    op.create_index("ix_orders_created_at_id", "orders", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_orders_user_id_created_at_id", "orders", ["user_id", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_orders_user_id_created_at_id", table_name="orders")
    op.drop_index("ix_orders_created_at_id", table_name="orders")
    op.create_index(op.f("ix_orders_user_id"), "orders", ["user_id"], unique=False)
    op.drop_constraint("uq_order_items_order_id_product_id", "order_items", type_="unique")
    op.create_index(op.f("ix_order_items_order_id"), "order_items", ["order_id"], unique=False)
