"""lighter writes for the daily run: no foreign keys from action instances, nor from plans
to customers and invoices (never deleted); reminders-only index by invoice; no index on the
log's event; no link row for an invoice-mode plan's own invoice (recoup/plans/links.py reads
it from plans.invoice_id)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

REMINDERS_ONLY = sa.text("plan_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("action_instances", schema=None) as batch_op:
        batch_op.drop_constraint("fk_action_instances_customer_id_customers", type_="foreignkey")
        batch_op.drop_constraint("fk_action_instances_invoice_id_invoices", type_="foreignkey")
        batch_op.drop_constraint("fk_action_instances_policy_id_policies", type_="foreignkey")
        batch_op.drop_constraint("fk_action_instances_plan_id_plans", type_="foreignkey")
        batch_op.drop_index("ix_action_instances_invoice_id")
        batch_op.create_index(
            "ix_action_instances_reminders",
            ["invoice_id"],
            unique=False,
            sqlite_where=REMINDERS_ONLY,
            postgresql_where=REMINDERS_ONLY,
        )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_constraint("fk_plans_customer_id_customers", type_="foreignkey")
        batch_op.drop_constraint("fk_plans_invoice_id_invoices", type_="foreignkey")
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_log_entries_event")
    op.execute(
        "DELETE FROM plan_invoices WHERE EXISTS (SELECT 1 FROM plans WHERE plans.id = "
        "plan_invoices.plan_id AND plans.invoice_id = plan_invoices.invoice_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_plans_invoice_id_invoices", "invoices", ["invoice_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_plans_customer_id_customers", "customers", ["customer_id"], ["id"]
        )
    op.execute(
        "INSERT INTO plan_invoices (plan_id, invoice_id, joined_on) "
        "SELECT id, invoice_id, opened_on FROM plans WHERE invoice_id IS NOT NULL"
    )
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.create_index("ix_log_entries_event", ["event"], unique=False)
    with op.batch_alter_table("action_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_action_instances_reminders")
        batch_op.create_index("ix_action_instances_invoice_id", ["invoice_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_action_instances_plan_id_plans", "plans", ["plan_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_action_instances_policy_id_policies", "policies", ["policy_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_action_instances_invoice_id_invoices", "invoices", ["invoice_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_action_instances_customer_id_customers", "customers", ["customer_id"], ["id"]
        )
