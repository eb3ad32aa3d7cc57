"""People of the back office (issue 12): users (argon2 password hashes, a role) and their
browser sessions (the SHA-256 of the cookie's token, an expiry, revoked on logout)

Revision ID: 0009_users
Revises: 0008_api_keys
Create Date: 2026-12-01 14:45:00
"""

import sqlalchemy as sa
from alembic import op

import recoup.core.db

revision = "0009_users"
down_revision = "0008_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("task_roles", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", recoup.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", recoup.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", recoup.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", recoup.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", recoup.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", recoup.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_sessions_user_id"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("users")
