"""API keys of the REST API (issue 11): name, role, the SHA-256 of the key, a display prefix

Revision ID: 0008_api_keys
Revises: 0007_settings_row
Create Date: 2026-12-01 13:30:00
"""

import sqlalchemy as sa
from alembic import op

import recoup.core.db

revision = "0008_api_keys"
down_revision = "0007_settings_row"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("created_at", recoup.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", recoup.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", recoup.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
