"""Single sign-on: which provider identity (auth provider, subject) is which local user,
under Synapse's table name so an admin's queries carry over; and the short-lived sessions
of the browser's round trip through a provider (the state, nonce and PKCE verifier sent
with it, and a new user's pending choice of username), kept server-side; and which devices
were signed in through which session at a provider (its `sid`), so the provider's
back-channel logout can end them (Synapse's table name).

Revision ID: 0026_sso
Revises: 0025_sliding_sync
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_sso"
down_revision = "0025_sliding_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_external_ids",
        sa.Column("auth_provider", sa.Text(), primary_key=True),
        sa.Column("external_id", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.Text(), nullable=False),
    )
    op.create_index("ix_user_external_ids_user_id", "user_external_ids", ["user_id"])
    op.create_table(
        "sso_sessions",
        sa.Column("session_id", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("expires_ts", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_sso_sessions_expires_ts", "sso_sessions", ["expires_ts"])
    op.create_table(
        "device_auth_providers",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("auth_provider_id", sa.Text(), nullable=False),
        sa.Column("auth_provider_session_id", sa.Text(), nullable=False),
    )
    op.create_index(
        "ix_device_auth_providers_session",
        "device_auth_providers",
        ["auth_provider_id", "auth_provider_session_id"],
    )
    op.create_index(
        "ix_device_auth_providers_device", "device_auth_providers", ["user_id", "device_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_device_auth_providers_device", table_name="device_auth_providers")
    op.drop_index("ix_device_auth_providers_session", table_name="device_auth_providers")
    op.drop_table("device_auth_providers")
    op.drop_index("ix_sso_sessions_expires_ts", table_name="sso_sessions")
    op.drop_table("sso_sessions")
    op.drop_index("ix_user_external_ids_user_id", table_name="user_external_ids")
    op.drop_table("user_external_ids")
