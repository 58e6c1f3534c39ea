"""account reset: account epochs, the capital entries, and the epoch of fills and snapshots

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 22:30:00

Each existing account gets the capital entry of its creation (its initial cash, which no
earlier version changed), so that the capital entries of every ledger sum to the capital
put in.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("epoch_ts", sa.BigInteger(), server_default="0", nullable=False)
        )
    for table in ("fills", "equity_snapshots"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False)
            )
    op.create_table(
        "capital",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("ts_event", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=48), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=True),
        sa.Column("qty", sa.String(length=48), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_capital_user", "capital", ["user_id", "id"], unique=False)
    op.execute(
        "INSERT INTO capital (user_id, epoch, ts_event, kind, amount) "
        "SELECT accounts.user_id, 0, users.ts_created, 'capital', accounts.initial_cash "
        "FROM accounts JOIN users ON users.id = accounts.user_id ORDER BY accounts.user_id"
    )


def downgrade() -> None:
    op.drop_index("ix_capital_user", table_name="capital")
    op.drop_table("capital")
    for table in ("equity_snapshots", "fills"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("epoch")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("epoch_ts")
        batch_op.drop_column("epoch")
