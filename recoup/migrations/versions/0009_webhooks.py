"""Webhook endpoints of their own (issue 11): a signing secret per endpoint (Standard
Webhooks), the previous one during a rotation, a description; deliveries name their endpoint

Existing endpoints keep working: each gets a new secret of its own for the new
`webhook-signature` header, while `Recoup-Signature` stays signed with RECOUP_WEBHOOK_SECRET as
before. Their deliveries are linked to them by URL.

Revision ID: 0009_webhooks
Revises: 0009_idempotency
Create Date: 2026-12-01 14:45:00
"""

import base64
import secrets

import sqlalchemy as sa
from alembic import op

import recoup.core.db

revision = "0009_webhooks"
down_revision = "0009_idempotency"
branch_labels = None
depends_on = None


def _new_secret() -> str:
    # written out here, not imported: a migration must not change when the code does
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("secret", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("previous_secret", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column(
                "previous_secret_expires_at",
                recoup.core.db.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    endpoints = sa.table(
        "webhook_endpoints", sa.column("id", sa.Integer), sa.column("secret", sa.String)
    )
    connection = op.get_bind()
    for (endpoint_id,) in connection.execute(sa.select(endpoints.c.id)).all():
        connection.execute(
            endpoints.update().where(endpoints.c.id == endpoint_id).values(secret=_new_secret())
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=100), nullable=False)

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_endpoint_id"), ["endpoint_id"], unique=False
        )
    op.execute(
        "UPDATE webhook_deliveries SET endpoint_id = (SELECT webhook_endpoints.id FROM "
        "webhook_endpoints WHERE webhook_endpoints.url = webhook_deliveries.url)"
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_endpoint_id"))
        batch_op.drop_column("endpoint_id")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret")
        batch_op.drop_column("secret")
        batch_op.drop_column("description")
