"""orders: post_only, self-trade prevention and why the matcher canceled an order

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 09:00:00

Orders placed before it are not post_only and have no stp (NULL reads as cancel_newest,
the default).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("post_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("stp", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("stp")
        batch_op.drop_column("post_only")
