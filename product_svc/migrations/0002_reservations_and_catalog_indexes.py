"""reservations, creation times of categories and images, catalog indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 02:22:34.428411
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("released", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("quantity > 0", name="reservations_quantity_positive"),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "product_id"),
    )
    op.add_column(
        "categories",
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.create_index("ix_categories_created_at_id", "categories", ["created_at", "id"], unique=False)
    op.add_column(
        "product_images",
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.drop_index(op.f("ix_products_category_id"), table_name="products")
    op.create_index(
        "ix_products_category_id_created_at_id",
        "products",
        ["category_id", "created_at", "id"],
        unique=False,
    )
    op.create_index("ix_products_created_at_id", "products", ["created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_products_created_at_id", table_name="products")
    op.drop_index("ix_products_category_id_created_at_id", table_name="products")
    op.create_index(op.f("ix_products_category_id"), "products", ["category_id"], unique=False)
    op.drop_column("product_images", "created_at")
    op.drop_index("ix_categories_created_at_id", table_name="categories")
    op.drop_column("categories", "created_at")
    op.drop_table("reservations")
