"""action instances count crashes and transport failures apart from attempts

`crashes`: how many times the process executing the instance died (or hung past its lease)
before it could record an outcome. `transport_failures`: how many times in a row its channel's
server could not be reached; those back off over hours and do not use up attempts.

Revision ID: 0006_execution
Revises: 0005_worklist
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_execution"
down_revision = "0005_worklist"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action_instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("crashes", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(
            sa.Column(
                "transport_failures", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("action_instances", schema=None) as batch_op:
        batch_op.drop_column("transport_failures")
        batch_op.drop_column("crashes")
