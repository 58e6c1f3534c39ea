"""order types: time in force, limit/stop/trail prices, triggers and replacements

Orders from before this revision were limit orders that rested until filled or canceled:
their time in force is gtc and their limit price is their price.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 00:40:00
"""

import sqlalchemy as sa
from alembic import op

import actors.accountant.ledger

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PRICES = ("limit_price", "stop_price", "trail_price", "trail_percent")


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("time_in_force", sa.String(length=3), server_default="gtc", nullable=False)
        )
        for name in PRICES:
            batch_op.add_column(
                sa.Column(name, actors.accountant.ledger.ExactDecimal(length=48), nullable=True)
            )
        batch_op.add_column(
            sa.Column("triggered", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("replaces", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("replaced_by", sa.BigInteger(), nullable=True))
    op.execute("UPDATE orders SET limit_price = price WHERE type = 'limit'")


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for name in ("replaced_by", "replaces", "triggered", *reversed(PRICES), "time_in_force"):
            batch_op.drop_column(name)
