"""a promise to pay (R10): the amount promised and the day it was made, on the plan

Revision ID: 0005_worklist
Revises: 0004_fees
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import recoup.core.db

revision = "0005_worklist"
down_revision = "0004_fees"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("promise_amount", recoup.core.db.Amount(), nullable=True))
        batch_op.add_column(sa.Column("promise_made_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("promise_made_on")
        batch_op.drop_column("promise_amount")
