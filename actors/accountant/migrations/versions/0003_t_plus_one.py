"""trading days: T+1 positions (shares bought on the latest buying day), DAY orders' day

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 01:10:00
"""

import sqlalchemy as sa
from alembic import op

import actors.accountant.ledger

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "locked_qty",
                actors.accountant.ledger.ExactDecimal(length=48),
                server_default="0",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("locked_day", sa.String(length=10), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trading_day", sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("trading_day")
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_column("locked_day")
        batch_op.drop_column("locked_qty")
