"""Create registration_tokens and the UIA sessions that hold one.

A token's `pending` count is not stored: it is the number of user-interactive auth sessions
holding the token, so a session that expires or is deleted releases its use without a
counter that could drift.

Revision ID: 0005_registration_tokens
Revises: 0004_user_data
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_registration_tokens"
down_revision = "0004_user_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registration_tokens",
        sa.Column("token", sa.Text(), primary_key=True),
        # NULL: unlimited
        sa.Column("uses_allowed", sa.Integer(), nullable=True),
        # registrations that finished with this token
        sa.Column("completed", sa.Integer(), nullable=False, server_default="0"),
        # ms since the epoch; NULL: never expires
        sa.Column("expiry_time", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "registration_token_sessions",
        sa.Column(
            "session_id",
            sa.Text(),
            sa.ForeignKey("ui_auth_sessions.session_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "token",
            sa.Text(),
            sa.ForeignKey("registration_tokens.token", ondelete="CASCADE"),
            nullable=False,
        ),
        # ms since the epoch: a session older than the UIA session lifetime no longer counts
        sa.Column("creation_ts", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_registration_token_sessions_token", "registration_token_sessions", ["token"]
    )


def downgrade() -> None:
    op.drop_index("ix_registration_token_sessions_token", table_name="registration_token_sessions")
    op.drop_table("registration_token_sessions")
    op.drop_table("registration_tokens")
