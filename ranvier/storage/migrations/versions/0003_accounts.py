"""Create accounts: users, profiles, devices, tokens and user-interactive auth sessions.

Tokens are stored as SHA-256 hashes: a copy of the database must not let anyone act as a
user. User-interactive auth sessions live in the database so that every process can
continue a session another one started.

Revision ID: 0003_accounts
Revises: 0002_server_info
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_accounts"
down_revision = "0002_server_info"
branch_labels = None
depends_on = None


def _user_fk() -> sa.ForeignKey:
    return sa.ForeignKey("users.user_id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.Text(), primary_key=True),
        # NULL: the user cannot log in with a password (guests, SSO-only users)
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("is_guest", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deactivated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("erased", sa.Boolean(), nullable=False, server_default=sa.false()),
        # Synapse's user types: NULL (a person), "support", "bot"
        sa.Column("user_type", sa.Text(), nullable=True),
        # ms since the epoch
        sa.Column("creation_ts", sa.BigInteger(), nullable=False),
        sa.Column("appservice_id", sa.Text(), nullable=True),
        sa.Column("shadow_banned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("approved", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("consent_version", sa.Text(), nullable=True),
        sa.Column("consent_ts", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "profiles",
        sa.Column("user_id", sa.Text(), _user_fk(), primary_key=True),
        sa.Column("displayname", sa.Text(), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
    )
    op.create_table(
        "devices",
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("last_seen_ts", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_ip", sa.Text(), nullable=True),
        sa.Column("last_seen_user_agent", sa.Text(), nullable=True),
        sa.Column("creation_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        # the token that replaced this one on refresh: this one stays usable until the
        # replacement's access token is first used, so a lost response does not log out
        sa.Column(
            "next_token_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("refresh_tokens.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("expiry_ts", sa.BigInteger(), nullable=True),
        # session_lifetime: no refresh past this point, however often the token rotates
        sa.Column("ultimate_session_expiry_ts", sa.BigInteger(), nullable=True),
        sa.Column("creation_ts", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_refresh_tokens_user_id_device_id", "refresh_tokens", ["user_id", "device_id"]
    )
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("valid_until_ms", sa.BigInteger(), nullable=True),
        sa.Column(
            "refresh_token_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("refresh_tokens.id", ondelete="CASCADE"),
            nullable=True,
        ),
        # set once the token has been used, which retires the refresh token it replaced
        sa.Column("used", sa.Boolean(), nullable=False, server_default=sa.false()),
        # an admin acting as this user (Synapse's admin login-as-user)
        sa.Column("puppets_user_id", sa.Text(), nullable=True),
        sa.Column("creation_ts", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_access_tokens_user_id_device_id", "access_tokens", ["user_id", "device_id"])
    op.create_table(
        "login_tokens",
        sa.Column("token_hash", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("expiry_ts", sa.BigInteger(), nullable=False),
        # single use: set when exchanged at /login
        sa.Column("used_ts", sa.BigInteger(), nullable=True),
        sa.Column("auth_provider_id", sa.Text(), nullable=True),
        sa.Column("auth_provider_session_id", sa.Text(), nullable=True),
    )
    op.create_index("ix_login_tokens_expiry_ts", "login_tokens", ["expiry_ts"])
    op.create_table(
        "user_ips",
        sa.Column("user_id", sa.Text(), _user_fk(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.Column("last_seen_ts", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("user_id", "ip", "user_agent"),
    )
    op.create_table(
        "ui_auth_sessions",
        sa.Column("session_id", sa.Text(), primary_key=True),
        sa.Column("creation_ts", sa.BigInteger(), nullable=False),
        # what the session was started for ("POST /_matrix/client/v3/delete_devices");
        # spec: a session must not be reused for a different request
        sa.Column("operation", sa.Text(), nullable=False),
        # the first request's body (JSON), for operations that must not change mid-way
        sa.Column("clientdict", sa.Text(), nullable=False),
        # stages' own per-session data (JSON object keyed by stage)
        sa.Column("serverdict", sa.Text(), nullable=False),
    )
    op.create_table(
        "ui_auth_sessions_credentials",
        sa.Column(
            "session_id",
            sa.Text(),
            sa.ForeignKey("ui_auth_sessions.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("stage_type", sa.Text(), nullable=False),
        # what the stage proved (JSON), e.g. the user ID a password belonged to
        sa.Column("result", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "stage_type"),
    )


def downgrade() -> None:
    op.drop_table("ui_auth_sessions_credentials")
    op.drop_table("ui_auth_sessions")
    op.drop_table("user_ips")
    op.drop_index("ix_login_tokens_expiry_ts", table_name="login_tokens")
    op.drop_table("login_tokens")
    op.drop_index("ix_access_tokens_user_id_device_id", table_name="access_tokens")
    op.drop_table("access_tokens")
    op.drop_index("ix_refresh_tokens_user_id_device_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("devices")
    op.drop_table("profiles")
    op.drop_table("users")
