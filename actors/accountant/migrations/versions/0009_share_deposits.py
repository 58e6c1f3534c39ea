"""share deposits: the value of the shares deposited in each account's epoch

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00

The admin may put shares into an account as capital (`account.deposit`, `user.create`
with `positions`): each is a `capital` entry of kind `deposit`, which needs no new column;
the account keeps what was deposited in its current epoch, the rest of the base its
returns are measured against. No account held deposited shares before, so it is 0.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deposited_value", sa.String(length=48), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("deposited_value")
