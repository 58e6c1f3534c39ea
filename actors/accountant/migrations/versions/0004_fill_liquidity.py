"""fills: maker or taker (the crypto profile's fee rates depend on it)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 03:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("liquidity", sa.String(length=5), server_default="taker", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.drop_column("liquidity")
