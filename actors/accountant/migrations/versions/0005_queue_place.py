"""orders: their place in the book's time priority, kept across a matcher restart

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_after", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("queue_ts", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("queue_ts")
        batch_op.drop_column("queue_after")
