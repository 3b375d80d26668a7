"""Create open_id_tokens (POST /user/{userId}/openid/request_token, answered by the
federation userinfo endpoint) and user_reports (POST /users/{userId}/report).

Revision ID: 0016_openid_user_reports
Revises: 0015_url_previews
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_openid_user_reports"
down_revision = "0015_url_previews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_id_tokens",
        # SHA-256 of the token: a leaked database hands out no identities
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("valid_until_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_open_id_tokens_valid_until_ms", "open_id_tokens", ["valid_until_ms"])
    op.create_table(
        "user_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("received_ts", sa.BigInteger(), nullable=False),
        sa.Column("target_user_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_user_reports_target_user", "user_reports", ["target_user_id"])


def downgrade() -> None:
    op.drop_index("ix_user_reports_target_user", table_name="user_reports")
    op.drop_table("user_reports")
    op.drop_index("ix_open_id_tokens_valid_until_ms", table_name="open_id_tokens")
    op.drop_table("open_id_tokens")
