"""refresh token families and used refresh tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 03:20:00.000000
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
        "refresh_families",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_refresh_families_user_id"), "refresh_families", ["user_id"], unique=False
    )
    op.create_table(
        "used_refresh_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "used_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["family_id"], ["refresh_families.id"]),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index(
        op.f("ix_used_refresh_tokens_family_id"),
        "used_refresh_tokens",
        ["family_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_used_refresh_tokens_family_id"), table_name="used_refresh_tokens")
    op.drop_table("used_refresh_tokens")
    op.drop_index(op.f("ix_refresh_families_user_id"), table_name="refresh_families")
    op.drop_table("refresh_families")
