"""invoice check dates (R15) in their own narrow table instead of invoices.next_check_on

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_checks",
        sa.Column("invoice_id", sa.String(length=100), nullable=False),
        sa.Column("check_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_checks_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_checks")),
    )
    with op.batch_alter_table("invoice_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_checks_check_on"), ["check_on"], unique=False)
    op.execute(
        "INSERT INTO invoice_checks (invoice_id, check_on) "
        "SELECT id, next_check_on FROM invoices WHERE next_check_on IS NOT NULL"
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_next_check_on")
        batch_op.drop_column("next_check_on")


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_check_on", sa.Date(), nullable=True))
        batch_op.create_index("ix_invoices_next_check_on", ["next_check_on"], unique=False)
    op.execute(
        "UPDATE invoices SET next_check_on = (SELECT check_on FROM invoice_checks "
        "WHERE invoice_checks.invoice_id = invoices.id)"
    )
    with op.batch_alter_table("invoice_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_checks_check_on"))
    op.drop_table("invoice_checks")
