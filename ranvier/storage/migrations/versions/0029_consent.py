"""Consent to the policy (user_consent): the version of the policy each user was last sent a
server notice about, `users.consent_server_notice_sent` under Synapse's name, so a user is
told once per version. What a user accepted, and when, are the `consent_version` and
`consent_ts` columns that 0003_accounts made.

Revision ID: 0029_consent
Revises: 0028_email_notifications
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029_consent"
down_revision = "0028_email_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("consent_server_notice_sent", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("consent_server_notice_sent")
