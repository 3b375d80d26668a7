"""Admin API: per-user overrides of the message rate limit (`rc_message`), set with
Synapse's `override_ratelimit` admin API, under Synapse's table name.

Revision ID: 0030_admin_api
Revises: 0029_consent
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030_admin_api"
down_revision = "0029_consent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ratelimit_override",
        sa.Column(
            "user_id",
            sa.Text(),
            sa.ForeignKey("users.user_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        # 0 lifts the limit altogether, as in Synapse
        sa.Column("messages_per_second", sa.BigInteger(), nullable=False),
        sa.Column("burst_count", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ratelimit_override")
