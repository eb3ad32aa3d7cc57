"""the settings row is created here, with the SPEC's defaults, so that reading never writes

Until now the first `get_settings` inserted it: every read could write, and two workers
starting together raced to insert it. An installation that already has the row keeps it as it
is.

Revision ID: 0007_settings_row
Revises: 0006_execution
Create Date: 2026-12-01 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import recoup.core.db
from recoup.core.clock import utc_now
from recoup.domain.defaults import SETTINGS_ID, settings_defaults

revision = "0007_settings_row"
down_revision = "0006_execution"
branch_labels = None
depends_on = None

settings = sa.table(
    "settings",
    sa.column("id", sa.Integer()),
    sa.column("mode", sa.String()),
    sa.column("invoice_types", sa.JSON()),
    sa.column("customer_balance", sa.JSON()),
    sa.column("max_levels", sa.Integer()),
    sa.column("timezone", sa.String()),
    sa.column("catch_up", sa.String()),
    sa.column("company", sa.JSON()),
    sa.column("updated_at", recoup.core.db.UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    connection = op.get_bind()
    present = connection.execute(
        sa.select(settings.c.id).where(settings.c.id == SETTINGS_ID)
    ).first()
    if present is None:
        connection.execute(sa.insert(settings), [{**settings_defaults(), "updated_at": utc_now()}])


def downgrade() -> None:
    # The row is valid data for the older schema too (its first read would have created it).
    pass
