"""Consent to the policy (user_consent) needs no table of its own: a user's accepted version
and when they accepted it are the `users` columns `consent_version` and `consent_ts` that
0003_accounts already made, under Synapse's names so a ported database keeps them. The
revision stays in the chain, empty, so that the revisions after it keep their place.

Revision ID: 0029_consent
Revises: 0028_email_notifications
"""

from __future__ import annotations

revision = "0029_consent"
down_revision = "0028_email_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
