"""Operations over the API (issue 11): a run's progress (its phase, units done of its total,
written per chunk so `GET /runs/{id}` can show it), and the late-invoice list's index (open
invoices in due-date order; the paid majority of an old book stays out of it)

Revision ID: 0009_ops
Revises: 0008_api_keys
Create Date: 2026-12-01 14:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_ops"
down_revision = "0009_users"
branch_labels = None
depends_on = None

LATE = "status IN ('open', 'partially_paid')"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("phase", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("units_done", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("units_total", sa.Integer(), nullable=True))
    op.create_index(
        "ix_invoices_late",
        "invoices",
        ["due_date", "id"],
        postgresql_where=sa.text(LATE),
        sqlite_where=sa.text(LATE),
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_late", table_name="invoices")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("units_total")
        batch.drop_column("units_done")
        batch.drop_column("phase")
