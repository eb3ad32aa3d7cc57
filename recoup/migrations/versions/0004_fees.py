"""fees: a charge's status (open, exported, waived) and who waived it why; a level's
deadline_days (the `deadline` its templates state)

Revision ID: 0004_fees
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import recoup.core.db

revision = "0004_fees"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("charges", schema=None) as batch_op:
        # every charge made so far is still owed: open
        batch_op.add_column(
            sa.Column("status", sa.String(length=20), server_default="open", nullable=False)
        )
        batch_op.add_column(
            sa.Column("exported_at", recoup.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("waived_at", recoup.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("waived_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("waived_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("levels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("levels", schema=None) as batch_op:
        batch_op.drop_column("deadline_days")
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.drop_column("waived_reason")
        batch_op.drop_column("waived_by")
        batch_op.drop_column("waived_at")
        batch_op.drop_column("exported_at")
        batch_op.drop_column("status")
